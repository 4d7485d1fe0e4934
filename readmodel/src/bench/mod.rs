//! `raftledger-readmodel bench`: measures the read model against real, self-started
//! nats-server and PostgreSQL (read-model bars of BENCHMARKS.md): sustained projection events/s (catching up
//! a backlog), publish -> PostgreSQL commit latency p50/p99 at fixed publish rates, and
//! rebuild events/s. Events are synthetic but in the node's wire format, published with the
//! relay's headers.
//!
//! - `gen` — the deterministic event generator.

mod gen;

use crate::local::{nats::LocalNats, postgres::LocalPostgres};
use async_nats::jetstream::{self, message::PublishMessage};
use gen::Gen;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publishes in flight while filling the backlog (as the relay's window).
const PUBLISH_WINDOW_MAX: usize = 256;
/// Longest wait for the projection to reach a seq before the bench gives up.
const CATCH_UP_TIMEOUT_S: u64 = 600;

/// Benchmark options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Backlog size for the sustained and rebuild measurements.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Publish rates (events/s) for the latency measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<u64>,
    /// Seconds per latency measurement.
    #[arg(long, default_value_t = 10)]
    pub rate_s: u64,
    /// Customer accounts in the synthetic stream.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
}

/// Runs the benchmark and prints a Markdown table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let nats = LocalNats::start(&dir.join("nats"))?;
    // Durable PostgreSQL (fsync, full-page writes, synchronous commit), as in production.
    let pg = LocalPostgres::start_durable(&dir.join("pg"))?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    crate::local::nats::create_ledger_stream(&js).await?;
    let mut gen = Gen::new(args.accounts);
    println!("bench: publishing a backlog of {} events", args.events);
    let t = Instant::now();
    publish_n(&js, &mut gen, args.events, None).await?;
    let publish_rate = args.events as f64 / t.elapsed().as_secs_f64();

    let rm = crate::start(crate::config::ReadModelConfig {
        listen: "127.0.0.1:0".into(),
        nats_url: nats.url(),
        postgres_url: pg.url(),
        query_connections_max: 4,
        header_read_timeout_ms: crate::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
        access: Default::default(),
        tls: Default::default(),
    })
    .await?;
    let t = Instant::now();
    wait_seq(&rm.manager.watermark, args.events).await?;
    let sustained = args.events as f64 / t.elapsed().as_secs_f64();
    println!("bench: projected the backlog at {sustained:.0} events/s");

    let mut rows = Vec::new();
    for &rate in &args.rates {
        let (p50, p99, n) =
            latency_at(&js, &mut gen, &rm.manager.watermark, rate, args.rate_s).await?;
        println!("bench: {rate} events/s -> p50 {p50:.1} ms, p99 {p99:.1} ms ({n} events)");
        rows.push((rate, p50, p99));
    }

    let head = gen.seq();
    rm.manager
        .start_rebuild()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rebuild = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(s) = rm.manager.rebuild_status().filter(|s| s.state != "running") {
            break s;
        }
    };
    println!("bench: rebuild of {head} events: {rebuild:?}");
    println!("\n| metric | value |\n|---|---|");
    println!("| backlog publish rate (bench publisher) | {publish_rate:.0} events/s |");
    println!(
        "| sustained projection (catch-up of {} events) | {sustained:.0} events/s |",
        args.events
    );
    for (rate, p50, p99) in rows {
        println!("| publish -> PostgreSQL commit at {rate} events/s | p50 {p50:.1} ms, p99 {p99:.1} ms |");
    }
    println!(
        "| rebuild ({head} events, new schema to swap) | {:.0} events/s |",
        rebuild.events_per_s.unwrap_or(0.0)
    );
    drop(rm);
    drop(pg);
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("raftledger-rm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Publishes `n` events, pipelined; records each event's send instant when `sent` is given.
async fn publish_n(
    js: &jetstream::Context,
    gen: &mut Gen,
    n: u64,
    sent: Option<&Mutex<Vec<(u64, Instant)>>>,
) -> anyhow::Result<()> {
    let mut inflight = std::collections::VecDeque::new();
    for _ in 0..n {
        let payload = gen.next_event();
        let seq = gen.seq();
        if let Some(s) = sent {
            s.lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push((seq, Instant::now()));
        }
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(seq.to_string())
            .expected_last_sequence(seq - 1);
        inflight.push_back(js.send_publish("ledger.events.bench", msg).await?);
        if inflight.len() >= PUBLISH_WINDOW_MAX {
            if let Some(a) = inflight.pop_front() {
                a.await?;
            }
        }
    }
    for a in inflight {
        a.await?;
    }
    Ok(())
}

async fn wait_seq(w: &tokio::sync::watch::Sender<u64>, seq: u64) -> anyhow::Result<()> {
    let mut rx = w.subscribe();
    tokio::time::timeout(
        Duration::from_secs(CATCH_UP_TIMEOUT_S),
        rx.wait_for(|s| *s >= seq),
    )
    .await??;
    Ok(())
}

/// Publishes at `rate` events/s for `secs`; returns (p50 ms, p99 ms, events) of send -> the
/// watermark reaching the event (raised by the projector right after the commit that contains
/// it, or by its NOTIFY, whichever comes first): what a `min_seq` reader waits for.
async fn latency_at(
    js: &jetstream::Context,
    gen: &mut Gen,
    w: &tokio::sync::watch::Sender<u64>,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(f64, f64, usize)> {
    let sent = Arc::new(Mutex::new(Vec::<(u64, Instant)>::new()));
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut rx = w.subscribe();
    let (s2, l2) = (sent.clone(), lat.clone());
    let observer = tokio::spawn(async move {
        let mut done = 0usize;
        while rx.changed().await.is_ok() {
            let seq = *rx.borrow_and_update();
            let now = Instant::now();
            let Ok(sent) = s2.lock() else { return };
            let Ok(mut lat) = l2.lock() else { return };
            while done < sent.len() && sent[done].0 <= seq {
                lat.push(now.duration_since(sent[done].1).as_secs_f64() * 1000.0);
                done += 1;
            }
        }
    });
    let per_tick = (rate / 1000).max(1);
    let ticks = secs * rate / per_tick;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * per_tick / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..ticks {
        tick.tick().await;
        publish_n(js, gen, per_tick, Some(&sent)).await?;
    }
    wait_seq(w, gen.seq()).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    observer.abort();
    let mut v = lat.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    v.sort_by(|a, b| a.total_cmp(b));
    anyhow::ensure!(!v.is_empty(), "no latency samples");
    let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    Ok((q(0.50), q(0.99), v.len()))
}
