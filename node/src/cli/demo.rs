//! `raftledger demo`: starts a local cluster of real node processes, initializes it, prints
//! URLs and example `curl` lines, and runs until Ctrl-C. `--failover` also runs a small
//! transfer load, SIGKILLs the leader, reports the time until writes commit again and checks
//! that no acknowledged transfer was lost, then restarts the old leader and shows it catching up.

use crate::client::LedgerClient;
use crate::local_cluster::LocalCluster;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Flags of `raftledger demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Node i serves its API on base-port + i - 1.
    #[arg(long, default_value_t = 8080)]
    pub base_port: u16,
    /// Node i serves Raft RPC on raft-base-port + i - 1.
    #[arg(long, default_value_t = 9080)]
    pub raft_base_port: u16,
    /// Data directory (default: ./demo-data). Existing data is reused (the cluster restarts).
    #[arg(long, default_value = "demo-data")]
    pub data: PathBuf,
    /// Run the failover demonstration, then keep running.
    #[arg(long)]
    pub failover: bool,
    /// Exit after setting up (and after the failover demo) instead of waiting for Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Also run the read side: nats-server, PostgreSQL and the read model (local processes
    /// from scripts/install-deps.sh, in fresh dirs under the data dir).
    #[arg(long)]
    pub with_readmodel: bool,
    /// Read-model API port (with `--with-readmodel`).
    #[arg(long, default_value_t = 8090)]
    pub readmodel_port: u16,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let exe = std::env::current_exe().context("locate raftledger binary")?;
    std::fs::create_dir_all(&args.data)?;
    let mut read_side = match args.with_readmodel {
        true => Some(super::demo_readmodel::DemoReadSide::start_servers(
            &args.data,
        )?),
        false => None,
    };
    let nats_args: Vec<String> = match &read_side {
        Some(r) => vec!["--nats-url".into(), r.nats.url()],
        None => Vec::new(),
    };
    let nats_args: Vec<&str> = nats_args.iter().map(String::as_str).collect();
    let mut cluster = LocalCluster::new(
        &exe,
        args.nodes,
        args.base_port,
        args.raft_base_port,
        &args.data,
    )?
    .with_args(&nats_args);
    cluster.start_all()?;
    println!(
        "starting {} nodes (logs in {}/node-N.log) ...",
        args.nodes,
        args.data.display()
    );
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .context("no leader elected within 20 s; see the node logs")?;
    anyhow::ensure!(
        cluster.wait_ready(Duration::from_secs(20)).await,
        "nodes not ready within 20 s"
    );
    println!("\nraftledger cluster is up. leader: node {leader}\n");
    for n in &cluster.nodes {
        println!(
            "  node {}  api {}  raft {}",
            n.id,
            n.api_url(),
            n.raft_url()
        );
    }
    let api = cluster.node(1).api_url();
    println!("\ntry:");
    println!("  curl -s -XPOST {api}/v1/accounts -d '{{\"id\":\"alice\",\"currency\":\"USD\"}}' -H 'content-type: application/json'");
    println!("  curl -s -XPOST {api}/v1/accounts -d '{{\"id\":\"bob\",\"currency\":\"USD\"}}' -H 'content-type: application/json'");
    println!("  curl -s -XPOST {api}/v1/deposits -d '{{\"id\":\"dep-1\",\"account\":\"alice\",\"amount\":10000}}' -H 'content-type: application/json'");
    println!("  curl -s -XPOST {api}/v1/transfers -d '{{\"id\":\"t-1\",\"from\":\"alice\",\"to\":\"bob\",\"amount\":2500}}' -H 'content-type: application/json'");
    println!("  curl -s '{api}/v1/balances?accounts=alice,bob'");
    println!("  curl -s '{api}/v1/accounts/alice/balance?at=2026-01-01T00:00:00Z'");
    println!("  curl -s {api}/cluster/status");
    if let Some(r) = read_side.as_mut() {
        let rm = r.start_readmodel(args.readmodel_port).await?;
        println!(
            "\nread model: {rm}  (nats {}, postgres port {})",
            r.nats.url(),
            r.postgres.port
        );
        println!("  curl -s '{rm}/v1/accounts/alice?min_seq=1'");
        println!("  curl -s '{rm}/v1/accounts/alice/history'");
        println!("  curl -s '{rm}/admin/projections'");
    }
    if args.failover {
        failover(&mut cluster).await?;
    }
    if args.exit {
        return Ok(());
    }
    println!("\nrunning; Ctrl-C stops all nodes");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    Ok(())
}

async fn failover(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    println!("\n== failover demo ==");
    let clients: Vec<LedgerClient> = (1..=cluster.nodes.len() as u64)
        .map(|i| cluster.client(i))
        .collect();
    let c = &clients[0];
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (a, b) = (format!("fo-{run_id}-a"), format!("fo-{run_id}-b"));
    c.open_account(&a, "USD", 0).await?;
    c.open_account(&b, "USD", 0).await?;
    c.deposit(&format!("fo-{run_id}-dep"), &a, 1_000_000_000)
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let last_ok_us = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (stop, acked, last_ok_us) = (stop.clone(), acked.clone(), last_ok_us.clone());
        let clients = clients.clone();
        let (a, b, run_id) = (a.clone(), b.clone(), run_id.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = format!("fo-{run_id}-{w}-{i}");
                // Retry the same id on other nodes until an answer: idempotent by design.
                for attempt in 0..200u64 {
                    let c = &clients[((w + attempt) as usize) % clients.len()];
                    match c.transfer(&id, &a, &b, 1).await {
                        Ok(r) if r.ok() => {
                            acked.lock().map(|mut v| v.push(id.clone())).ok();
                            last_ok_us.store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    if stop.load(Ordering::Relaxed) && attempt > 100 {
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster
        .wait_leader(Duration::from_secs(5))
        .await
        .context("no leader")?;
    let before = acked.lock().map(|v| v.len()).unwrap_or(0);
    println!("load running: {before} transfers acknowledged; SIGKILL leader node {leader}");
    let kill_at = t0.elapsed().as_micros() as u64;
    cluster.kill(leader);
    let mut recovered_us = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let l = last_ok_us.load(Ordering::Relaxed);
        if l > kill_at {
            recovered_us = Some(l - kill_at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match recovered_us {
        Some(us) => println!(
            "writes committed again {:.0} ms after the kill",
            us as f64 / 1000.0
        ),
        None => println!("writes did not resume within 15 s"),
    }
    let new_leader = cluster.wait_leader(Duration::from_secs(10)).await;
    println!("new leader: {new_leader:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().map(|v| v.clone()).unwrap_or_default();
    let reader = clients
        .iter()
        .find(|c| {
            !c.base()
                .ends_with(&cluster.node(leader).api_port.to_string())
        })
        .cloned()
        .unwrap_or_else(|| clients[0].clone());
    let mut missing = 0;
    for id in &acked {
        match reader.get(&format!("/v1/transfers/{id}")).await {
            Ok(r) if r.ok() => {}
            _ => missing += 1,
        }
    }
    let bal = reader
        .get(&format!("/v1/balances?accounts={a},{b}"))
        .await?;
    let total = bal.body["balances"][&a].as_i64().unwrap_or(0)
        + bal.body["balances"][&b].as_i64().unwrap_or(0);
    println!(
        "acknowledged transfers: {}; missing after failover: {missing}; {b} balance {} (expected {}); money conserved: {}",
        acked.len(),
        bal.body["balances"][&b],
        acked.len(),
        total == 1_000_000_000
    );
    anyhow::ensure!(missing == 0, "{missing} acknowledged transfers were lost");
    println!("restarting node {leader}");
    cluster.start(leader)?;
    let target = reader.status().await?["committed"].as_u64().unwrap_or(0);
    let t = Instant::now();
    loop {
        let s = cluster.client(leader).status().await.ok();
        let applied = s.as_ref().and_then(|s| s["applied"].as_u64()).unwrap_or(0);
        if applied >= target {
            println!(
                "node {leader} caught up to index {target} in {:.0} ms (role {})",
                t.elapsed().as_secs_f64() * 1000.0,
                s.map(|s| s["role"].clone()).unwrap_or_default()
            );
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "node {leader} did not catch up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
