//! Command-line arguments of `raftledger-chaos run`, with durations like `60s`, `2m`, `500ms`.

use crate::compaction::Compaction;
use crate::schedule::NemesisKind;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// raftledger chaos harness.
#[derive(Parser, Debug)]
#[command(name = "raftledger-chaos", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one drill: workload + fault schedule + checkers + report.
    Run(RunArgs),
}

/// Arguments of one drill.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Nodes to launch (3 or 5). Ignored with `--target`.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the workload and the fault schedule run (before the heal phase).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Nemeses to schedule, comma separated: kill, kill-all, pause, partition (= halves,
    /// isolate-leader, ring, one-way), halves, isolate-leader, ring, one-way, delay, drop,
    /// membership, wipe, transfer-storm, all, none; with `--readmodel` also nats-kill,
    /// postgres-kill, readmodel-kill (= readside), which `all` then includes.
    #[arg(long, default_value = "kill,pause,partition", value_delimiter = ',')]
    pub nemesis: Vec<String>,
    /// Seed of the fault schedule and the workload's choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parent of the run directory (default `./chaos-runs`).
    #[arg(long, default_value = "chaos-runs")]
    pub out: PathBuf,
    /// Use this exact run directory instead of `<out>/<timestamp>-seed<N>`.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Existing cluster's API URLs (comma separated): the harness does not own the processes,
    /// so kill, pause, wipe and link faults are unavailable.
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// The `raftledger` binary (default: next to this binary, built with cargo if missing).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Extra environment for node processes, `KEY=VALUE` (repeatable), e.g. a sabotage switch.
    #[arg(long = "node-env")]
    pub node_env: Vec<String>,
    /// Bank accounts.
    #[arg(long, default_value_t = 8)]
    pub accounts: usize,
    /// Money in the bank (minor units), split evenly across the accounts.
    #[arg(long, default_value_t = 80_000)]
    pub total: i64,
    /// Concurrent logical clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Deadline of one client operation including retries; past it the outcome is `info`.
    #[arg(long, default_value_t = 4_000)]
    pub op_deadline_ms: u64,
    /// Pause between one client's operations (keeps histories checkable).
    #[arg(long, default_value_t = 20)]
    pub think_ms: u64,
    /// Time limit of the WGL linearizability search; expiry gives `unknown`.
    #[arg(long, default_value_t = 20_000)]
    pub wgl_time_limit_ms: u64,
    /// Longest the heal phase waits for one leader and equal replicas.
    #[arg(long, default_value_t = 60_000)]
    pub converge_timeout_ms: u64,
    /// Also run the CQRS read side: a throw-away nats-server and PostgreSQL, nodes relaying
    /// with `--nats-url`, and `raftledger-readmodel`; adds checkers L7, RYW and RM-lag.
    #[arg(long)]
    pub readmodel: bool,
    /// The `raftledger-readmodel` binary (default: next to the node binary, else next to this
    /// binary; never built implicitly).
    #[arg(long)]
    pub readmodel_bin: Option<PathBuf>,
    /// How often the launched nodes compact their log: `default`, or `aggressive` (64 KiB WAL
    /// segments, a snapshot every 200 entries, 50 entries kept, a 256-byte memo on every
    /// transfer: every node deletes WAL segments many times, and the `compaction` checker
    /// demands evidence that it did). Not with `--target`.
    #[arg(long, value_enum, default_value_t = Compaction::Default)]
    pub compaction: Compaction,
    /// Lag bound: after healing, the read model must reach the nodes' last event seq with no
    /// lag behind the stream head within this many ms (checker RM-lag).
    #[arg(long, default_value_t = 20_000)]
    pub readmodel_lag_bound_ms: u64,
}

impl RunArgs {
    /// The nemesis kinds requested, expanded (`partition` = its four shapes).
    pub fn nemesis_kinds(&self) -> anyhow::Result<Vec<NemesisKind>> {
        let mut out = Vec::new();
        for name in &self.nemesis {
            for k in NemesisKind::parse_group(name.trim(), self.readmodel)? {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// The command line that reproduces this run.
    pub fn reproduce_command(&self) -> String {
        let mut s = String::from("raftledger-chaos run");
        if self.target.is_empty() {
            s += &format!(" --nodes {}", self.nodes);
        } else {
            s += &format!(" --target {}", self.target.join(","));
        }
        s += &format!(
            " --duration {}s --nemesis {} --accounts {} --clients {}",
            self.duration.as_secs(),
            self.nemesis.join(","),
            self.accounts,
            self.clients
        );
        if self.target.is_empty() {
            s += &format!(" --compaction {}", self.compaction.name());
        }
        if self.readmodel {
            s += &format!(
                " --readmodel --readmodel-lag-bound-ms {}",
                self.readmodel_lag_bound_ms
            );
        }
        for e in &self.node_env {
            s += &format!(" --node-env {e}");
        }
        if let Some(b) = &self.node_bin {
            s += &format!(" --node-bin {}", b.display());
        }
        s += &format!(" --seed {}", self.seed);
        s
    }
}

/// Parses `250ms`, `30s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7h").is_err());
        assert!(parse_duration("x").is_err());
    }

    fn parse(line: &str) -> RunArgs {
        let argv = std::iter::once("raftledger-chaos").chain(line.split_whitespace());
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Run(a),
            }) => a,
            Err(e) => panic!("{line}: {e}"),
        }
    }

    #[test]
    fn compaction_flag_and_kill_all_round_trip_through_the_reproduce_command() {
        let a = parse("run --nemesis kill-all,kill --compaction aggressive --seed 9");
        assert_eq!(a.compaction, Compaction::Aggressive);
        assert_eq!(
            a.nemesis_kinds().unwrap(),
            vec![NemesisKind::KillAll, NemesisKind::Kill]
        );
        let line = a.reproduce_command();
        assert!(line.contains(" --compaction aggressive"), "{line}");
        assert!(line.contains(" --nemesis kill-all,kill"), "{line}");
        let again = parse(line.trim_start_matches("raftledger-chaos "));
        assert_eq!(again.compaction, a.compaction);
        assert_eq!(again.nemesis, a.nemesis);
        assert_eq!(again.seed, 9);
        assert_eq!(again.reproduce_command(), line);
    }

    #[test]
    fn compaction_defaults_and_rejects_unknown_values() {
        let a = parse("run");
        assert_eq!(a.compaction, Compaction::Default);
        assert!(a.reproduce_command().contains(" --compaction default"));
        let t = parse("run --target http://127.0.0.1:1 --nemesis membership");
        assert!(!t.reproduce_command().contains("--compaction"));
        let argv = ["raftledger-chaos", "run", "--compaction", "extreme"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
