//! Start-up of an owned cluster: the binaries (`raftledger`, and with `--readmodel`
//! `raftledger-readmodel`), the read side's servers (before the nodes, which relay to NATS),
//! the node processes behind their link proxies, the first leader, then the read-model
//! processor.

use crate::cli::RunArgs;
use crate::cluster::Cluster;
use crate::procs::{Procs, StartMode};
use crate::proxy::Mesh;
use crate::readside::ReadSide;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for the first leader after launching the nodes.
const FIRST_LEADER_TIMEOUT_MS: u64 = 30_000;
/// File name of the read-model binary.
const READMODEL_BIN: &str = "raftledger-readmodel";

/// `--node-bin`, else `raftledger` next to this binary, else built with cargo.
pub fn node_binary(args: &RunArgs) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.node_bin {
        anyhow::ensure!(b.exists(), "--node-bin {} does not exist", b.display());
        return Ok(b.clone());
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("exe dir")?;
    let sibling = dir.join("raftledger");
    if sibling.exists() {
        return Ok(sibling);
    }
    eprintln!("raftledger-chaos: building the node binary (cargo build -p node --bin raftledger)");
    let release = dir.ends_with("release");
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "node", "--bin", "raftledger"]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().context("run cargo")?;
    anyhow::ensure!(
        st.success() && sibling.exists(),
        "could not build {}",
        sibling.display()
    );
    Ok(sibling)
}

/// `--readmodel-bin`, else `raftledger-readmodel` next to the node binary, else next to this
/// binary. Never built implicitly: missing is an error naming the build command.
pub fn readmodel_binary(args: &RunArgs, node_bin: &Path) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.readmodel_bin {
        anyhow::ensure!(b.exists(), "--readmodel-bin {} does not exist", b.display());
        return Ok(b.clone());
    }
    let me = std::env::current_exe()?;
    let candidates: Vec<PathBuf> = [node_bin.parent(), me.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(READMODEL_BIN))
        .collect();
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "--readmodel: {READMODEL_BIN} not found at {}; build it with `cargo build -p readmodel --bin {READMODEL_BIN}` (same profile) or pass --readmodel-bin",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )
    })
}

fn parse_env(kv: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    kv.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--node-env {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// Launches the owned cluster (and, with `readmodel_bin`, the read side) in `dir`.
pub async fn launch(
    args: &RunArgs,
    exe: &Path,
    dir: &Path,
    readmodel_bin: Option<&Path>,
) -> anyhow::Result<Cluster> {
    let env = parse_env(&args.node_env)?;
    let readside = match readmodel_bin {
        Some(b) => Some(tokio::task::block_in_place(|| {
            ReadSide::start_servers(&dir.join("readside"), b)
        })?),
        None => None,
    };
    // Snapshots (and log purges) happen during every drill, so catch-up by snapshot is
    // exercised too; `--compaction aggressive` makes them frequent and deletes WAL segments.
    let mut node_args = args.compaction.node_args();
    if let Some(rs) = &readside {
        node_args.extend(["--nats-url".to_owned(), rs.nats.url()]);
    }
    let procs = Procs::new(exe, args.nodes, dir, env, node_args)?;
    let raft_ports: BTreeMap<u64, u16> =
        procs.nodes.values().map(|n| (n.id, n.raft_port)).collect();
    let mesh = Mesh::start(&raft_ports).await?;
    let mut cluster = Cluster::owned(procs, mesh, readside);
    for id in cluster.ids() {
        cluster.start(id, &StartMode::Peers)?;
    }
    cluster
        .wait_leader(Duration::from_millis(FIRST_LEADER_TIMEOUT_MS))
        .await
        .context("no leader after launch (see node-*.log in the run dir)")?;
    if let Some(rs) = cluster.owned.as_mut().and_then(|o| o.readside.as_mut()) {
        rs.processor
            .start_ready(&reqwest::Client::new())
            .await
            .context("start raftledger-readmodel")?;
    }
    Ok(cluster)
}
