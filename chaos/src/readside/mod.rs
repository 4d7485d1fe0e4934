//! The CQRS read side owned by the harness (`--readmodel`): a throw-away JetStream
//! nats-server and PostgreSQL from the install step (`readmodel::local`; a missing binary fails
//! the run loudly, never skips), the nodes relaying to that nats-server (`--nats-url`), and the
//! `raftledger-readmodel` processor as a child process. Data and logs live under
//! `<run dir>/readside/`.
//!
//! - `process` — the `raftledger-readmodel` child: spawn, SIGKILL, restart, crash detection.
//! - `api`     — read-model HTTP reads (`X-Read-Model-Seq`, `/admin/projections`).
//! - `faults`  — the read-side nemeses (nats-kill, postgres-kill, readmodel-kill) with evidence.
//! - `probe`   — during the run: read-your-writes reads with `min_seq`, lag samples.
//! - `settle`  — after healing: the bounded catch-up wait, then the observation L7 checks.

pub mod api;
pub mod faults;
pub mod probe;
pub mod process;
pub mod settle;

use anyhow::Context as _;
use process::RmProc;
use readmodel::local::{nats::LocalNats, postgres::LocalPostgres};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// What the read side contributed to one drill: the checkers' and the report's input.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Read-your-writes reads and lag samples taken while the workload ran.
    pub samples: probe::Samples,
    /// The heal phase: catch-up and the final observation.
    pub settle: settle::Settle,
    /// Exits of the processor the harness did not cause.
    pub crashes: Vec<String>,
}

impl Outcome {
    /// Compact facts for run.json: catch-up, final projection state, crashes, read counts.
    pub fn summary(&self) -> serde_json::Value {
        let ryw = &self.samples.ryw;
        let ok = ryw.iter().filter(|s| s.status == 200).count();
        let behind = ryw
            .iter()
            .filter(|s| s.status == 503 && s.error.as_deref() == Some("read_model_behind"))
            .count();
        json!({
            "target_seq": self.settle.target_seq,
            "caught_up_ms": self.settle.caught_up_ms,
            "lag_bound_ms": self.settle.bound_ms,
            "final_projections": self.settle.obs.projections,
            "processor_crashes": self.crashes,
            "ryw_reads": {"total": ryw.len(), "ok": ok, "behind": behind,
                "unavailable": ryw.len() - ok - behind},
            "lag_max_events": self.samples.lag.iter().filter_map(|s| s.events).max(),
            "lag_max_ms": self.samples.lag.iter().filter_map(|s| s.ms).max(),
            "lag_max_events_behind_log": self.samples.lag.iter()
                .filter_map(|s| Some(s.log_seq?.saturating_sub(s.checkpoint?))).max(),
        })
    }

    /// The summary plus every sample (lag during the run and the catch-up, read-your-writes
    /// reads), for results.json.
    pub fn details(&self) -> serde_json::Value {
        let mut v = self.summary();
        v["ryw_samples"] = json!(self.samples.ryw);
        v["lag_samples"] = json!(self.samples.lag);
        v["catch_up_samples"] = json!(self.settle.samples);
        v
    }
}

/// Timeout of the TCP probe that tells whether a server listens.
const LISTEN_PROBE_MS: u64 = 300;

/// The read side of one drill. Dropping it stops every process.
pub struct ReadSide {
    /// The read-model processor (first: dropped, i.e. killed, before its servers).
    pub processor: RmProc,
    /// JetStream server the nodes relay to.
    pub nats: LocalNats,
    /// PostgreSQL of the projections.
    pub postgres: LocalPostgres,
}

impl ReadSide {
    /// Starts nats-server and PostgreSQL in fresh dirs under `dir` (blocking: call it before
    /// the nodes, which need the NATS URL); the processor is described, not started.
    pub fn start_servers(dir: &Path, readmodel_bin: &Path) -> anyhow::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
        let nats = LocalNats::start(&dir.join("nats")).context("start nats-server")?;
        let postgres = LocalPostgres::start(&dir.join("pg")).context("start PostgreSQL")?;
        crate::ports::claim(nats.port);
        crate::ports::claim(postgres.port);
        let processor = RmProc::new(readmodel_bin, dir, &nats.url(), &postgres.url())?;
        Ok(Self {
            processor,
            nats,
            postgres,
        })
    }

    /// The read model's API base URL.
    pub fn api_url(&self) -> String {
        self.processor.url()
    }

    /// Facts for run.json: URLs, binaries and versions.
    pub fn facts(&self, readmodel_bin: &Path, lag_bound_ms: u64) -> serde_json::Value {
        let nats_bin = readmodel::local::nats::binary().ok();
        let pg_bindir = readmodel::local::postgres::bindir().ok();
        json!({
            "api": self.api_url(),
            "nats_url": self.nats.url(),
            "postgres_url": self.postgres.url(),
            "readmodel_bin": readmodel_bin.display().to_string(),
            "nats_server_version": nats_bin.and_then(|b| version(&b)),
            "postgres_version": pg_bindir.and_then(|d| version(&d.join("postgres"))),
            "lag_bound_ms": lag_bound_ms,
            "log": self.processor.log_path.display().to_string(),
        })
    }

    /// Heal: restarts whatever is down (a fault's own restart failed, or the processor
    /// crashed). Returns what it did. Blocks while a server starts.
    pub async fn heal(&mut self, http: &reqwest::Client) -> Vec<String> {
        let mut did = Vec::new();
        if !listening(self.nats.port) {
            let r = tokio::task::block_in_place(|| self.nats.restart());
            did.push(format!("restarted nats-server: {}", ok_or(&r)));
        }
        if !listening(self.postgres.port) {
            let r = tokio::task::block_in_place(|| self.postgres.restart());
            did.push(format!("restarted PostgreSQL: {}", ok_or(&r)));
        }
        if !self.processor.is_running() {
            let r = self.processor.start_ready(http).await;
            did.push(format!("restarted raftledger-readmodel: {}", ok_or(&r)));
        }
        did
    }
}

fn ok_or<T>(r: &anyhow::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {e:#}"),
    }
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(LISTEN_PROBE_MS)).is_ok()
}

fn version(bin: &Path) -> Option<String> {
    let o = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}
