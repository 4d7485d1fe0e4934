//! Phase 2, single transfers over HTTP: `--clients` concurrent clients, each a closed loop of
//! `POST /v1/transfers` with unique ids, for `--duration-s`; run once spread round-robin over
//! every node (followers forward to the leader) and once against the leader only. Reports ops/s
//! (2xx only) and latency p50/p99/p999. The higher rate is the peak phase 3 halves.

use super::ctx::{two_distinct, Ctx};
use super::http::{error_kind, TransferReq};
use super::report::{verdict_higher, Report};
use super::stats::{per_s, thousands, Errors, Lat, LatSummary};
use rand::SeedableRng;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of one transfer request (as `LedgerClient`): slower answers count as errors.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);

/// Result of one closed-loop run.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// 2xx replies.
    pub ok: u64,
    /// Wall time until every client stopped.
    pub elapsed_s: f64,
    /// Latency of 2xx replies.
    pub lat: LatSummary,
    /// Failed requests by kind.
    pub errors: Errors,
}

impl ClosedLoop {
    /// 2xx per second.
    pub fn ops_s(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }
}

/// Runs `clients` closed loops of single transfers for `duration`, request k going to
/// `urls[k % urls.len()]`. Ids are `{tag}.{client}.{n}`.
pub async fn closed_loop(
    ctx: &Ctx,
    pool: Arc<Vec<String>>,
    urls: Vec<String>,
    clients: usize,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<ClosedLoop> {
    let urls: Arc<Vec<String>> =
        Arc::new(urls.iter().map(|u| format!("{u}/v1/transfers")).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let (http, pool, urls, next) = (ctx.http.clone(), pool.clone(), urls.clone(), next.clone());
        let prefix = format!("{tag}.{c}.");
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(c as u64 ^ 0x5eed);
            let (mut ok, mut lat, mut errors) = (0u64, Lat::new(), Errors::default());
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = format!("{prefix}{n}");
                let (a, b) = two_distinct(&mut rng, pool.len());
                let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let body = TransferReq {
                    id: &id,
                    from: &pool[a],
                    to: &pool[b],
                    amount: 1,
                };
                let sent = Instant::now();
                match http.post_head(url, &body, TRANSFER_TIMEOUT).await {
                    Ok(h) if h.ok() => {
                        lat.record(sent.elapsed());
                        ok += 1;
                    }
                    Ok(h) => {
                        errors.add(format!("http {}", h.status));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => {
                        errors.add(error_kind(&e));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, lat, errors)
        }));
    }
    let (mut ok, mut lat, mut errors) = (0u64, Lat::new(), Errors::default());
    for t in tasks {
        let (o, l, e) = t.await?;
        ok += o;
        lat.merge(&l);
        errors.merge(&e);
    }
    Ok(ClosedLoop {
        ok,
        elapsed_s: start.elapsed().as_secs_f64(),
        lat: lat.summary(),
        errors,
    })
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let pool = ctx.pool().await?;
    let clients = ctx.args.clients;
    let duration = Duration::from_secs(ctx.args.duration_s);
    let mut peak: f64 = 0.0;
    let mut results = serde_json::Map::new();
    for leader_only in [false, true] {
        let (leader, leader_url) = ctx.leader().await?;
        let (urls, name, label) = if leader_only {
            (
                vec![leader_url],
                "leader_only",
                format!("leader only (node {leader})"),
            )
        } else {
            (
                ctx.urls.clone(),
                "round_robin",
                format!("round-robin over {} nodes", ctx.urls.len()),
            )
        };
        println!(
            "  {clients} clients, {label}, {} s ...",
            ctx.args.duration_s
        );
        let tag = format!("s{}{}", ctx.run_id, if leader_only { "l" } else { "r" });
        let term_before = ctx.max_term().await;
        let r = closed_loop(ctx, pool.clone(), urls, clients, duration, &tag).await?;
        let term_changes = ctx.max_term().await.saturating_sub(term_before);
        ctx.postings_total += r.ok;
        peak = peak.max(r.ops_s());
        println!(
            "  {label}: {} ok = {}; latency {}; errors: {}; term changes: {term_changes}",
            thousands(r.ok),
            per_s(r.ops_s()),
            r.lat,
            r.errors
        );
        results.insert(
            name.into(),
            json!({"ok": r.ok, "elapsed_s": r.elapsed_s, "ops_per_s": r.ops_s(), "latency": r.lat,
                   "errors": r.errors, "term_changes": term_changes}),
        );
        rep.row(
            &format!("single transfers/s over HTTP, {clients} clients, {label}"),
            format!(
                "{} (p50 {:.2} / p99 {:.2} / p999 {:.2} ms; {term_changes} term changes)",
                per_s(r.ops_s()),
                r.lat.p50_ms,
                r.lat.p99_ms,
                r.lat.p999_ms
            ),
            "5,000",
            "> single-node PostgreSQL (phase 8)",
            verdict_higher(r.ops_s(), 5_000.0, None),
        );
    }
    ctx.single_peak_ops_s = Some(peak);
    results.insert("clients".into(), json!(clients));
    results.insert("peak_ops_per_s".into(), json!(peak));
    rep.phase("single", serde_json::Value::Object(results));
    Ok(())
}
