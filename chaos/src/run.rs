//! One drill from start to verdict: launch (or attach to) the cluster, set up the bank, run the
//! workload and the fault schedule (and, with `--readmodel`, the read-model probe) side by side
//! with a progress line, heal, wait for convergence, fetch every node's log, let the read model
//! catch up, check, and write the report.

use crate::check::compaction;
use crate::check::coverage::{self, HealOutcome};
use crate::check::l6::{self, Applied};
use crate::check::{self, l7, rm_lag, ryw, CheckResult, Inputs, Verdict};
use crate::cli::RunArgs;
use crate::cluster::Cluster;
use crate::compaction::Compaction;
use crate::history::{OpKind, Outcome};
use crate::launch::{launch, node_binary, readmodel_binary};
use crate::log::{self, LogEvent, Replay};
use crate::readside::{self, probe};
use crate::report::{self, RunRecord};
use crate::schedule::{self, NemesisKind};
use crate::workload::{Workload, WorkloadConfig};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Interval of the progress line.
const PROGRESS_INTERVAL_MS: u64 = 2_000;

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
        owned || !args.readmodel,
        "--readmodel starts its own nats-server, PostgreSQL and nodes: not with --target"
    );
    anyhow::ensure!(
        owned || args.compaction == Compaction::Default,
        "--compaction sets flags of the nodes the harness launches: not with --target"
    );
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
    let rm_bin = match (&node_bin, args.readmodel) {
        (Some(b), true) => Some(readmodel_binary(&args, b)?),
        _ => None,
    };
    let mut cluster = if owned {
        launch(
            &args,
            node_bin.as_deref().unwrap_or(Path::new("raftledger")),
            &dir,
            rm_bin.as_deref(),
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
    if let (Some(rs), Some(b)) = (
        cluster.owned.as_ref().and_then(|o| o.readside.as_ref()),
        &rm_bin,
    ) {
        record.readmodel = Some(rs.facts(b, args.readmodel_lag_bound_ms));
    }
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
        memo_bytes: args.compaction.transfer_memo_bytes(),
    };
    let nodes: Vec<(u64, String)> = cluster.apis.iter().map(|(k, v)| (*k, v.clone())).collect();
    // Sampled until the heal phase is over: kill-all and heal restarts open the WALs too.
    let (wal_stop, wal_stop_rx) = tokio::sync::watch::channel(false);
    let wal_watch = crate::wal_watch::spawn(wal_dirs(&cluster), wal_stop_rx);
    let started = Instant::now();
    let workload = Workload::new(wcfg.clone(), nodes.clone(), started);
    workload.setup().await.context("bank setup")?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (samples, monitor) = crate::monitor::spawn(nodes.clone(), started, stop_rx.clone());
    let rm_url = cluster.readmodel_url();
    let rm_probe = rm_url
        .clone()
        .map(|u| probe::spawn(u, &nodes, workload.clone(), started, stop_rx.clone()));
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
    let rm_samples = match rm_probe {
        Some((s, task)) => {
            let _ = task.await;
            Some(s.lock().map(|s| s.clone()).unwrap_or_default())
        }
        None => None,
    };
    let (mut cluster, records) = nemesis.await.context("nemesis task")?;
    eprintln!("\nraftledger-chaos: healing");
    let healing = Instant::now();
    let healed = crate::nemesis::heal_all(&mut cluster).await;
    let (heal, positions) = converge(&cluster, &tag, args.converge_timeout_ms).await;
    let mut heal = heal;
    heal.crashed = crashed(&mut cluster, &dir);
    let _ = wal_stop.send(true);
    let wal = wal_watch.await.unwrap_or_default();
    let logs = fetch_logs(&cluster).await;
    monitor.abort();
    let _ = monitor.await;
    let accounts = wcfg.account_ids();
    let rm = match (rm_url, rm_samples) {
        (Some(url), Some(samples)) => Some(
            read_side_settle(
                &mut cluster,
                &url,
                &accounts,
                &tag,
                &args,
                (started, healing),
                samples,
            )
            .await,
        ),
        _ => None,
    };

    let ops = workload.history.snapshot();
    let (ref_id, reference) = logs
        .iter()
        .max_by_key(|(_, l)| l.len())
        .map(|(id, l)| (*id, l.clone()))
        .unwrap_or_default();
    let replay = Replay::build(&reference);
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
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    results.push(compaction::check(args.compaction, &wal, &samples));
    if let Some(rm) = &rm {
        results.push(l7::check(&rm.settle, &replay, &accounts, args.total));
        results.push(ryw::check(&rm.samples.ryw, &replay));
        results.push(rm_lag::check(&rm.settle, &rm.crashes, &rm.samples.lag));
    }
    let verdict = check::overall(&results);
    record.finish(verdict, ref_id, healed);
    record.compaction["evidence"] = serde_json::to_value(&wal)?;
    if let (Some(facts), Some(rm)) = (record.readmodel.as_mut(), &rm) {
        facts["outcome"] = rm.summary();
    }
    let bundle = report::Bundle {
        run: &record,
        ops: &ops,
        records: &records,
        results: &results,
        samples: &samples,
        heal: &heal,
        reference: &reference,
        readmodel: rm.as_ref(),
    };
    report::write_all(&dir, &bundle)?;
    drop(cluster);
    print_summary(&results, verdict, &dir, &reproduce);
    Ok(verdict)
}

/// The read side's heal phase: bounded catch-up, the final observation, processor crashes.
async fn read_side_settle(
    cluster: &mut Cluster,
    url: &str,
    bank: &[String],
    tag: &str,
    args: &RunArgs,
    times: (Instant, Instant),
    samples: probe::Samples,
) -> readside::Outcome {
    eprintln!("raftledger-chaos: waiting for the read model to catch up");
    let mut checked = bank.to_vec();
    checked.extend(["@world:USD".to_owned(), format!("{tag}-final")]);
    let settle =
        readside::settle::settle(cluster, url, &checked, args.readmodel_lag_bound_ms, times).await;
    let crashes = match cluster.owned.as_mut().and_then(|o| o.readside.as_mut()) {
        Some(rs) => {
            rs.processor.reap_crash();
            rs.processor.crashes.clone()
        }
        None => Vec::new(),
    };
    readside::Outcome {
        samples,
        settle,
        crashes,
    }
}

/// Each owned node's WAL directory (none with `--target`).
fn wal_dirs(cluster: &Cluster) -> BTreeMap<u64, PathBuf> {
    cluster
        .owned
        .iter()
        .flat_map(|o| o.procs.nodes.values())
        .map(|n| (n.id, n.data_dir.join("wal")))
        .collect()
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
