//! The run directory: `run.json` (seed, git sha, versions, schedule, capabilities, read-side
//! facts, compaction mode and evidence), `history.jsonl`, `nemesis.jsonl`, `results.json`
//! (per-invariant verdicts, counts, coverage, read-model lag, compaction evidence), node logs
//! (written there by the nodes), and the self-contained `report.html`.

pub mod html;
pub mod readmodel;

use crate::check::coverage::HealOutcome;
use crate::check::{CheckResult, Verdict};
use crate::cli::RunArgs;
use crate::history::{Op, Outcome};
use crate::log::LogEvent;
use crate::monitor::Sample;
use crate::nemesis::NemesisRecord;
use crate::schedule::{NemesisKind, Step};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Contents of run.json.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Seed.
    pub seed: u64,
    /// The command that reproduces the run.
    pub reproduce: String,
    /// `git rev-parse HEAD` of the working directory, if available.
    pub git_sha: Option<String>,
    /// Harness version.
    pub harness_version: &'static str,
    /// `raftledger --version` of the node binary.
    pub node_version: Option<String>,
    /// Node binary path.
    pub node_bin: Option<String>,
    /// Node count.
    pub nodes: usize,
    /// Run length before healing, ms.
    pub duration_ms: u64,
    /// Requested nemeses.
    pub nemeses: Vec<&'static str>,
    /// The schedule.
    pub schedule: Vec<Step>,
    /// What this run can do.
    pub capabilities: BTreeMap<&'static str, bool>,
    /// Extra node environment (sabotage switches).
    pub node_env: Vec<String>,
    /// Workload shape.
    pub workload: serde_json::Value,
    /// Final verdict (after checking).
    pub verdict: Option<Verdict>,
    /// Node whose log served as the reference.
    pub reference_log_node: Option<u64>,
    /// What the heal phase had to do.
    pub heal_actions: Vec<String>,
    /// `--readmodel`: URLs, binaries, versions, the lag bound; after the run its outcome.
    pub readmodel: Option<serde_json::Value>,
    /// `--compaction`: the mode and the node flags it implies; after the run, each node's WAL
    /// evidence (segment-deletion events).
    pub compaction: serde_json::Value,
}

impl RunRecord {
    /// A record before the run.
    pub fn new(
        args: &RunArgs,
        reproduce: &str,
        kinds: &[NemesisKind],
        schedule: Vec<Step>,
        owned: bool,
        node_bin: Option<&Path>,
    ) -> Self {
        let capabilities = BTreeMap::from([
            ("owned_processes", owned),
            ("kill", owned),
            ("kill_all", owned),
            ("compaction_flags", owned),
            ("pause", owned),
            ("link_proxy", owned),
            ("netns", false),
            ("membership", true),
            ("transfer_storm", true),
            ("readmodel", owned && args.readmodel),
            ("nats_kill", owned && args.readmodel),
            ("postgres_kill", owned && args.readmodel),
            ("readmodel_kill", owned && args.readmodel),
        ]);
        Self {
            seed: args.seed,
            reproduce: reproduce.to_owned(),
            git_sha: cmd_out("git", &["rev-parse", "HEAD"]),
            harness_version: env!("CARGO_PKG_VERSION"),
            node_version: node_bin.and_then(|b| cmd_out(&b.to_string_lossy(), &["--version"])),
            node_bin: node_bin.map(|b| b.display().to_string()),
            nodes: if owned { args.nodes } else { args.target.len() },
            duration_ms: args.duration.as_millis() as u64,
            nemeses: crate::run::kind_names(kinds),
            schedule,
            capabilities,
            node_env: args.node_env.clone(),
            workload: serde_json::json!({
                "accounts": args.accounts, "total": args.total, "clients": args.clients,
                "op_deadline_ms": args.op_deadline_ms, "think_ms": args.think_ms,
                "wgl_time_limit_ms": args.wgl_time_limit_ms,
                "transfer_memo_bytes": args.compaction.transfer_memo_bytes(),
            }),
            verdict: None,
            reference_log_node: None,
            heal_actions: Vec::new(),
            readmodel: None,
            compaction: serde_json::json!({
                "mode": args.compaction,
                "node_args": if owned { args.compaction.node_args() } else { Vec::new() },
                "deletion_events_min_per_node": args.compaction.deletion_events_min(),
            }),
        }
    }

    /// Records the outcome.
    pub fn finish(&mut self, verdict: Verdict, reference: u64, heal_actions: Vec<String>) {
        self.verdict = Some(verdict);
        self.reference_log_node = Some(reference);
        self.heal_actions = heal_actions;
    }
}

fn cmd_out(cmd: &str, args: &[&str]) -> Option<String> {
    let o = std::process::Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Everything a report is made of.
pub struct Bundle<'a> {
    /// run.json contents.
    pub run: &'a RunRecord,
    /// History.
    pub ops: &'a [Op],
    /// Faults as they happened.
    pub records: &'a [NemesisRecord],
    /// Checker results.
    pub results: &'a [CheckResult],
    /// Leader/term samples.
    pub samples: &'a [Sample],
    /// Heal phase.
    pub heal: &'a HealOutcome,
    /// Reference log.
    pub reference: &'a [LogEvent],
    /// The read side's samples and heal phase (`--readmodel`).
    pub readmodel: Option<&'a crate::readside::Outcome>,
}

/// Writes pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

/// Writes every report file.
pub fn write_all(dir: &Path, b: &Bundle<'_>) -> anyhow::Result<()> {
    write_json(&dir.join("run.json"), b.run)?;
    crate::history::write_jsonl(b.ops, &dir.join("history.jsonl"))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("nemesis.jsonl"))?);
    for r in b.records {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    f.flush()?;
    let mut counts: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for o in b.ops {
        let kind = serde_json::to_value(o.f)?.as_str().unwrap_or("").to_owned();
        let outcome = match o.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *counts.entry(kind).or_default().entry(outcome).or_default() += 1;
    }
    let coverage: Vec<_> = b
        .records
        .iter()
        .map(|r| serde_json::json!({"kind": r.kind, "took_effect": r.took_effect, "evidence": r.evidence}))
        .collect();
    let verdict = crate::check::overall(b.results);
    write_json(
        &dir.join("results.json"),
        &serde_json::json!({
            "verdict": verdict,
            "reproduce": b.run.reproduce,
            "invariants": b.results,
            "counts": counts,
            "coverage": coverage,
            "heal": b.heal,
            "log_events": b.reference.len(),
            "readmodel": b.readmodel.map(crate::readside::Outcome::details),
            "compaction": b.run.compaction,
        }),
    )?;
    std::fs::write(dir.join("report.html"), html::render(b))?;
    Ok(())
}
