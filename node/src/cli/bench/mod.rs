//! `raftledger bench`: measures the benchmark bars (BENCHMARKS.md) against a self-started 3-node cluster
//! (real node processes on loopback, in a temporary directory) or an already running one
//! (`--target`). Phases, in order (`--only` picks a subset):
//! - `batch`       — [`batch`]: transfers committed/s through `POST /v1/batches`.
//! - `single`      — [`single`]: single transfers/s over HTTP, round-robin and leader-only.
//! - `latency`     — [`latency`]: open-loop commit latency at half of the single-transfer peak.
//! - `failover`    — [`failover`]: leader SIGKILL -> first committed write, over N trials.
//! - `time-travel` — [`timetravel`]: load N postings, then `balance?at=` / `?at_index=`.
//! - `catchup`     — [`catchup`]: a wiped follower rejoins and catches up.
//! - `resources`   — [`resources`]: node RSS and disk, per million postings.
//! - `postgres`    — [`pg_baseline`]: the same transfer transaction on a durable single-node
//!   PostgreSQL, compared with the single-transfer peak (the aim of that bar).
//! - `growth`      — [`growth`]: memory, disk, snapshot, restart, time travel, idempotent
//!   replay and commit latency during a snapshot build at growing sizes (`--growth-steps`). Not run by default (it takes many minutes):
//!   only with `--only growth`.
//!
//! Support: [`ctx`] (cluster, leader discovery, account pool), [`http`] (client), [`restart`]
//! (time a follower's restart to serving reads), [`snapshot`] (have a node build a snapshot),
//! [`commit_probe`] (commit latency without and during a snapshot build),
//! [`stats`] (histograms), [`report`] (table, verdicts, JSON, machine info). Each phase prints
//! as it goes; the run ends with a markdown table (metric | result | must | aim | verdict).

pub mod batch;
pub mod catchup;
pub mod commit_probe;
pub mod ctx;
pub mod failover;
pub mod growth;
pub mod http;
pub mod latency;
pub mod pg_baseline;
pub mod report;
pub mod resources;
pub mod restart;
pub mod settle;
pub mod single;
pub mod snapshot;
pub mod stats;
pub mod timetravel;

use ctx::Ctx;
use report::{Machine, Report};
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `raftledger bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Bench an already running cluster: its nodes' API URLs, comma separated. Default: start
    /// a 3-node cluster of this binary in a temporary directory (free ports).
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Seconds per throughput/latency phase (batch, each single run, latency).
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Concurrent clients of the batch and single-transfer phases.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Transfers per request in the batch phase (the API takes up to 4096).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Postings loaded for the time-travel and catch-up phases.
    #[arg(long, default_value_t = 1_000_000)]
    pub postings: u64,
    /// Time-travel queries per mode (`at` / `at_index`, stale / linearizable).
    #[arg(long, default_value_t = 5_000)]
    pub queries: usize,
    /// Growth phase: total postings after each step, comma separated, increasing. The phase
    /// runs only with `--only growth` (the default steps take many minutes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000000,5000000,10000000"
    )]
    pub growth_steps: Vec<u64>,
    /// Leader kills in the failover phase (self-started cluster only).
    #[arg(long, default_value_t = 20)]
    pub failover_trials: usize,
    /// Run only these phases (comma separated), still in the standard order. Default: every
    /// phase but `growth`.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Phase>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the self-started cluster's data and logs in this directory (default: a temporary
    /// directory, removed at exit unless a phase failed).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Extra flag passed to every self-started node (repeatable), e.g.
    /// `--node-arg=--snapshot-every-entries=100000`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

/// A measurement of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Phase {
    /// Transfers committed/s via the batch API.
    Batch,
    /// Single transfers/s over HTTP.
    Single,
    /// Commit latency at half of the single-transfer peak.
    Latency,
    /// Leader SIGKILL -> first committed write.
    Failover,
    /// Time-travel balance queries over loaded postings.
    #[value(alias = "timetravel")]
    TimeTravel,
    /// A wiped follower catches up.
    Catchup,
    /// RSS and disk.
    Resources,
    /// The same transfer transaction on a durable single-node PostgreSQL (the aim of the
    /// single-transfer bar).
    #[value(alias = "pg")]
    Postgres,
    /// Memory, disk, snapshot, restart and query latency at growing sizes (only on request).
    Growth,
}

impl Phase {
    /// Every phase in run order.
    pub const ALL: [Phase; 9] = [
        Phase::Batch,
        Phase::Single,
        Phase::Latency,
        Phase::Failover,
        Phase::TimeTravel,
        Phase::Catchup,
        Phase::Resources,
        Phase::Postgres,
        Phase::Growth,
    ];

    /// Whether a run without `--only` includes the phase.
    fn by_default(self) -> bool {
        self != Phase::Growth
    }

    fn title(self) -> &'static str {
        match self {
            Phase::Batch => "1. batch throughput",
            Phase::Single => "2. single transfers over HTTP",
            Phase::Latency => "3. commit latency at half of peak",
            Phase::Failover => "4. failover",
            Phase::TimeTravel => "5. time travel",
            Phase::Catchup => "6. catch-up of a wiped node",
            Phase::Resources => "7. resources",
            Phase::Postgres => "8. PostgreSQL baseline",
            Phase::Growth => "9. growth",
        }
    }
}

impl BenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.duration_s >= 1, "--duration-s must be at least 1");
        anyhow::ensure!(self.clients >= 1, "--clients must be at least 1");
        anyhow::ensure!(
            (1..=4096).contains(&self.batch_size),
            "--batch-size must be 1..=4096"
        );
        anyhow::ensure!(self.queries >= 1, "--queries must be at least 1");
        growth::check_steps(&self.growth_steps)?;
        anyhow::ensure!(
            self.target.is_empty() || self.data.is_none(),
            "--data applies only to a self-started cluster"
        );
        anyhow::ensure!(
            self.target.is_empty() || self.node_args.is_empty(),
            "--node-arg applies only to a self-started cluster"
        );
        Ok(())
    }

    fn phases(&self) -> Vec<Phase> {
        selected(&self.only)
    }
}

/// The phases to run, in run order: `only`, or every phase run by default when it is empty.
fn selected(only: &[Phase]) -> Vec<Phase> {
    Phase::ALL
        .into_iter()
        .filter(|p| {
            if only.is_empty() {
                p.by_default()
            } else {
                only.contains(p)
            }
        })
        .collect()
}

/// The command line, shell-quoted where needed.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "'\"$|&;<>()*?".contains(c))
            {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run_phase(p: Phase, ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    match p {
        Phase::Batch => batch::run(ctx, rep).await,
        Phase::Single => single::run(ctx, rep).await,
        Phase::Latency => latency::run(ctx, rep).await,
        Phase::Failover => failover::run(ctx, rep).await,
        Phase::TimeTravel => timetravel::run(ctx, rep).await,
        Phase::Catchup => catchup::run(ctx, rep).await,
        Phase::Resources => resources::run(ctx, rep).await,
        Phase::Postgres => pg_baseline::run(ctx, rep).await,
        Phase::Growth => growth::run(ctx, rep).await,
    }
}

/// Runs the selected phases and prints (and optionally writes) the report. Fails when a phase
/// failed, after the report is out; the node logs are then kept.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let command = command_line();
    let machine = Machine::detect();
    println!(
        "# raftledger bench\n\ncommand: {command}\nmachine: {}\n",
        machine.line()
    );
    let phases = args.phases();
    let json_path = args.json.clone();
    let mut ctx = Ctx::new(args).await?;
    let mut rep = Report::default();
    let mut failed = Vec::new();
    let mut previous: Option<Phase> = None;
    for p in phases {
        if let Some(before) = previous.replace(p) {
            settle::wait_history_moved(&ctx, &mut rep, before.title()).await;
        }
        println!("\n## {}", p.title());
        let (t, rows_before) = (Instant::now(), rep.rows.len());
        if let Err(e) = run_phase(p, &mut ctx, &mut rep).await {
            println!("  FAILED: {e:#}");
            if rep.rows.len() == rows_before {
                rep.row(p.title(), format!("failed: {e}"), "", "", "error".into());
            }
            rep.note(format!("{}: failed: {e:#}", p.title()));
            failed.push(p.title());
            // Later phases need a working cluster; give a disturbed one a chance to settle.
            if let Err(e) = ctx.wait_healthy().await {
                rep.note(format!("cluster not healthy after the failure: {e:#}"));
            }
        }
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }
    println!(
        "\n## results\n\ncommand: `{command}`\nmachine: {}\n",
        machine.line()
    );
    print!("{}", rep.table());
    for n in &rep.notes {
        println!("- {n}");
    }
    if let Some(path) = &json_path {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&rep.to_json(&command, &machine))?,
        )?;
        println!("\nwrote {}", path.display());
    }
    if !failed.is_empty() {
        let logs = ctx
            .keep_data()
            .map(|d| format!("; node data and logs kept in {}", d.display()))
            .unwrap_or_default();
        anyhow::bail!(
            "{} phase(s) failed: {}{logs}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_runs_only_on_request() {
        let default = selected(&[]);
        assert_eq!(default.len(), Phase::ALL.len() - 1);
        assert!(!default.contains(&Phase::Growth));
        assert_eq!(
            selected(&[Phase::Growth, Phase::Batch]),
            vec![Phase::Batch, Phase::Growth]
        );
    }
}
