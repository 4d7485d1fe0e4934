//! One drill from start to verdict: launch (or attach to) the cluster, set up the bank, run the
//! workload and the fault schedule side by side with a progress line, heal, wait for
//! convergence, fetch every node's log, check, and write the report.

use crate::check::coverage::{self, HealOutcome};
use crate::check::l6::{self, Applied};
use crate::check::{self, CheckResult, Inputs, Verdict};
use crate::cli::RunArgs;
use crate::cluster::Cluster;
use crate::history::{OpKind, Outcome};
use crate::log::{self, LogEvent, Replay};
use crate::procs::{Procs, StartMode};
use crate::proxy::Mesh;
use crate::report::{self, RunRecord};
use crate::schedule::{self, NemesisKind};
use crate::workload::{Workload, WorkloadConfig};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for the first leader after launching the nodes.
const FIRST_LEADER_TIMEOUT_MS: u64 = 30_000;
/// Interval of the progress line.
const PROGRESS_INTERVAL_MS: u64 = 2_000;
/// Flags for every node: snapshots (and log purges) happen several times during a drill, so
/// catch-up by snapshot is exercised too.
const NODE_ARGS: [&str; 4] = [
    "--snapshot-every-entries",
    "2000",
    "--logs-kept-after-snapshot",
    "300",
];

/// Runs one drill; returns the overall verdict.
pub async fn run(args: RunArgs) -> anyhow::Result<Verdict> {
    let kinds = args.nemesis_kinds()?;
    let owned = args.target.is_empty();
    if !owned {
        if let Some(k) = kinds.iter().find(|k| k.needs_ownership()) {
            anyhow::bail!(
                "nemesis {} needs processes and links the harness owns; with --target use membership,transfer-storm",
                k.name()
            );
        }
    }
    anyhow::ensure!(
        !owned || (1..=9).contains(&args.nodes),
        "--nodes must be 1..=9"
    );
    anyhow::ensure!(
        args.accounts >= 2 && args.clients >= 1,
        "need >= 2 accounts and >= 1 client"
    );
    let dir = run_dir(&args);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let reproduce = args.reproduce_command();
    let node_bin = if owned {
        Some(node_binary(&args)?)
    } else {
        None
    };
    let mut cluster = if owned {
        launch(
            &args,
            node_bin.as_deref().unwrap_or(Path::new("raftledger")),
            &dir,
        )
        .await?
    } else {
        Cluster::target(&args.target).await?
    };
    let n = cluster.ids().len();
    let steps = schedule::generate(args.seed, &kinds, n, args.duration.as_millis() as u64);
    let mut record = RunRecord::new(
        &args,
        &reproduce,
        &kinds,
        steps.clone(),
        owned,
        node_bin.as_deref(),
    );
    report::write_json(&dir.join("run.json"), &record)?;
    eprintln!("raftledger-chaos: run dir {}", dir.display());
    eprintln!("reproduce with: {reproduce}");

    let tag = format!("c{}x{:x}", args.seed, node::proposer::now_us() % 0xff_ffff);
    let wcfg = WorkloadConfig {
        tag: tag.clone(),
        accounts: args.accounts,
        total: args.total,
        clients: args.clients,
        op_deadline_ms: args.op_deadline_ms,
        think_ms: args.think_ms,
        seed: args.seed,
    };
    let nodes: Vec<(u64, String)> = cluster.apis.iter().map(|(k, v)| (*k, v.clone())).collect();
    let started = Instant::now();
    let workload = Workload::new(wcfg.clone(), nodes.clone(), started);
    workload.setup().await.context("bank setup")?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (samples, monitor) = crate::monitor::spawn(nodes.clone(), started, stop_rx.clone());
    let wl = workload.clone();
    let clients = tokio::spawn(async move { wl.run(stop_rx).await });
    let current = Arc::new(Mutex::new(String::new()));
    let cur = current.clone();
    let nem_steps = steps.clone();
    let seed = args.seed;
    let end = started + args.duration;
    let nemesis = tokio::spawn(async move {
        let recs =
            crate::nemesis::run_schedule(&mut cluster, &nem_steps, seed, (started, end), cur).await;
        (cluster, recs)
    });
    progress(&workload, &samples, &current, started, args.duration).await;
    let _ = stop_tx.send(true);
    let _ = clients.await;
    let (mut cluster, records) = nemesis.await.context("nemesis task")?;
    eprintln!("\nraftledger-chaos: healing");
    let healed = crate::nemesis::heal_all(&mut cluster).await;
    let (heal, positions) = converge(&cluster, &tag, args.converge_timeout_ms).await;
    let mut heal = heal;
    heal.crashed = crashed(&mut cluster, &dir);
    let logs = fetch_logs(&cluster).await;
    monitor.abort();
    let _ = monitor.await;

    let ops = workload.history.snapshot();
    let (ref_id, reference) = logs
        .iter()
        .max_by_key(|(_, l)| l.len())
        .map(|(id, l)| (*id, l.clone()))
        .unwrap_or_default();
    let replay = Replay::build(&reference);
    let accounts = wcfg.account_ids();
    let inputs = Inputs {
        ops: &ops,
        log: &reference,
        replay: &replay,
        node_logs: &logs,
        accounts: &accounts,
        total: args.total,
        tag: &tag,
        wgl_time_limit_ms: args.wgl_time_limit_ms,
    };
    let mut results: Vec<CheckResult> = check::check_history(&inputs);
    results.push(l6::check(&positions, &logs));
    results.push(coverage::liveness(&heal, &ops));
    results.push(coverage::coverage(&kinds, &records));
    let verdict = check::overall(&results);
    record.finish(verdict, ref_id, healed);
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let bundle = report::Bundle {
        run: &record,
        ops: &ops,
        records: &records,
        results: &results,
        samples: &samples,
        heal: &heal,
        reference: &reference,
    };
    report::write_all(&dir, &bundle)?;
    drop(cluster);
    print_summary(&results, verdict, &dir, &reproduce);
    Ok(verdict)
}

fn run_dir(args: &RunArgs) -> PathBuf {
    if let Some(d) = &args.run_dir {
        return d.clone();
    }
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    args.out.join(format!("{stamp}-seed{}", args.seed))
}

/// `--node-bin`, else `raftledger` next to this binary, else built with cargo.
fn node_binary(args: &RunArgs) -> anyhow::Result<PathBuf> {
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

fn parse_env(kv: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    kv.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--node-env {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

async fn launch(args: &RunArgs, exe: &Path, dir: &Path) -> anyhow::Result<Cluster> {
    let env = parse_env(&args.node_env)?;
    let procs = Procs::new(
        exe,
        args.nodes,
        dir,
        env,
        NODE_ARGS.iter().map(|s| s.to_string()).collect(),
    )?;
    let raft_ports: BTreeMap<u64, u16> =
        procs.nodes.values().map(|n| (n.id, n.raft_port)).collect();
    let mesh = Mesh::start(&raft_ports).await?;
    let mut cluster = Cluster::owned(procs, mesh);
    for id in cluster.ids() {
        cluster.start(id, &StartMode::Peers)?;
    }
    cluster
        .wait_leader(Duration::from_millis(FIRST_LEADER_TIMEOUT_MS))
        .await
        .context("no leader after launch (see node-*.log in the run dir)")?;
    Ok(cluster)
}

async fn progress(
    w: &Workload,
    samples: &Mutex<Vec<crate::monitor::Sample>>,
    current: &Mutex<String>,
    started: Instant,
    duration: Duration,
) {
    let end = started + duration;
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(PROGRESS_INTERVAL_MS))).await;
        let ops = w.history.snapshot();
        let count = |o: Outcome| ops.iter().filter(|x| x.outcome == o).count();
        let writes = ops
            .iter()
            .filter(|x| x.f == OpKind::Transfer && x.outcome == Outcome::Ok)
            .count();
        let (leader, term) = samples
            .lock()
            .ok()
            .and_then(|s| {
                s.iter()
                    .rev()
                    .find(|x| x.role == "leader")
                    .map(|x| (x.node, x.term))
            })
            .unwrap_or((0, 0));
        let fault = current.lock().map(|c| c.clone()).unwrap_or_default();
        eprintln!(
            "[{:>4}s/{}s] ops {} ok {} fail {} info {} (transfers ok {writes}) | leader {leader} term {term} | fault: {}",
            started.elapsed().as_secs(),
            duration.as_secs(),
            ops.len(),
            count(Outcome::Ok),
            count(Outcome::Fail),
            count(Outcome::Info),
            if fault.is_empty() { "-" } else { &fault }
        );
    }
}

/// Heal phase: an agreed leader, one write, then equal applied index and hash everywhere.
async fn converge(
    cluster: &Cluster,
    tag: &str,
    timeout_ms: u64,
) -> (HealOutcome, BTreeMap<u64, Applied>) {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(timeout_ms);
    let mut h = HealOutcome {
        leader: cluster.wait_leader(Duration::from_millis(timeout_ms)).await,
        leader_ms: t0.elapsed().as_millis() as u64,
        ..HealOutcome::default()
    };
    let body = serde_json::json!({"id": format!("{tag}-final"), "currency": "USD"});
    let mut write_index = None;
    while write_index.is_none() && Instant::now() < deadline {
        for id in cluster.ids() {
            if let Ok(v) = cluster.admin(id, "/v1/accounts", &body).await {
                write_index = v["index"].as_u64();
                break;
            }
        }
        if write_index.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    h.write_ok = write_index.is_some();
    let mut positions = BTreeMap::new();
    while Instant::now() < deadline {
        let st = cluster.statuses().await;
        positions = st
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    Applied {
                        applied: s["applied"].as_u64().unwrap_or(0),
                        hash_index: s["applied_hash_index"].as_u64().unwrap_or(0),
                        hash: s["applied_hash"].as_str().unwrap_or("").to_owned(),
                    },
                )
            })
            .collect();
        let idx: Vec<u64> = positions.values().map(|p| p.hash_index).collect();
        let all_answer = st.len() == cluster.ids().len();
        let same = idx.windows(2).all(|w| w[0] == w[1]);
        if all_answer && same && idx.first().copied() >= write_index {
            h.converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.converge_ms = t0.elapsed().as_millis() as u64;
    (h, positions)
}

/// Node processes that died on their own, and panics found in node logs.
fn crashed(cluster: &mut Cluster, dir: &Path) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    if let Some(o) = cluster.owned.as_mut() {
        out.extend(o.procs.exited());
    }
    for id in cluster.ids() {
        let log = std::fs::read_to_string(dir.join(format!("node-{id}.log"))).unwrap_or_default();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("node.panic") || l.contains("panicked at"))
        {
            out.push((id, line.chars().take(300).collect()));
        }
    }
    out
}

async fn fetch_logs(cluster: &Cluster) -> BTreeMap<u64, Vec<LogEvent>> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for (id, s) in cluster.statuses().await {
        let until = s["last_event_seq"].as_u64().unwrap_or(0);
        match log::fetch(&http, &cluster.apis[&id], until).await {
            Ok(l) => {
                out.insert(id, l);
            }
            Err(e) => eprintln!("raftledger-chaos: could not fetch node {id}'s log: {e:#}"),
        }
    }
    out
}

fn print_summary(results: &[CheckResult], verdict: Verdict, dir: &Path, reproduce: &str) {
    eprintln!();
    for r in results {
        let first = r.first.as_ref().map(|c| c.message.as_str()).unwrap_or("");
        println!(
            "{:<9} {:<8} checked {:>7} violations {:>4} {} {}",
            r.id,
            r.verdict.name(),
            r.checked,
            r.violations,
            first,
            r.note
        );
    }
    println!("verdict: {}", verdict.name());
    println!("report: {}", dir.join("report.html").display());
    println!("reproduce with: {reproduce}");
}

/// Kinds in a stable order, for the run record.
pub fn kind_names(kinds: &[NemesisKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.name()).collect()
}
