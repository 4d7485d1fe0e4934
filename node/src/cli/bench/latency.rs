//! Phase 3, commit latency at half of peak: an open-loop dispatcher sends single transfers to
//! the leader at 50% of phase 2's peak rate for `--duration-s`, each in its own task, and
//! records the time from send to 2xx. Open loop means a slow reply never delays the next send,
//! so queueing shows up in the percentiles instead of silently lowering the rate. Without a
//! phase 2 result a short leader-only closed loop measures the peak first.

use super::ctx::{two_distinct, Ctx};
use super::http::{error_kind, TransferReq};
use super::report::{verdict_lower, Report};
use super::single::{closed_loop, TRANSFER_TIMEOUT};
use super::stats::{per_s, thousands, Errors, Lat};
use rand::SeedableRng;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests in flight at once: beyond this the cluster is not keeping up with half its peak
/// and further sends are counted as skipped instead of piling up tasks without bound.
const INFLIGHT_MAX: usize = 4096;
/// Longest a probe for the peak runs when phase 2 did not run.
const PROBE_S_MAX: u64 = 5;

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let pool = ctx.pool().await?;
    let (leader, leader_url) = ctx.leader().await?;
    let peak = match ctx.single_peak_ops_s {
        Some(p) => p,
        None => {
            let secs = ctx.args.duration_s.min(PROBE_S_MAX);
            println!(
                "  no phase 2 result: probing the peak with {} clients for {secs} s",
                ctx.args.clients
            );
            let tag = format!("lp{}", ctx.run_id);
            let r = closed_loop(
                ctx,
                pool.clone(),
                vec![leader_url.clone()],
                ctx.args.clients,
                Duration::from_secs(secs),
                &tag,
            )
            .await?;
            ctx.postings_total += r.ok;
            r.ops_s()
        }
    };
    anyhow::ensure!(
        peak >= 2.0,
        "peak single-transfer rate is {peak:.1}/s; nothing to halve"
    );
    let rate = peak / 2.0;
    let duration = Duration::from_secs(ctx.args.duration_s);
    println!(
        "  open loop at {} (half of peak {}) -> leader node {leader}, {} s",
        per_s(rate),
        per_s(peak),
        ctx.args.duration_s
    );

    let url = Arc::new(format!("{leader_url}/v1/transfers"));
    let lat = Arc::new(Mutex::new(Lat::new()));
    let errors = Arc::new(Mutex::new(Errors::default()));
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x1a7e);
    let mut set = tokio::task::JoinSet::new();
    let interval_ns = 1e9 / rate;
    let start = Instant::now();
    let end = start + duration;
    let (mut sent, mut skipped, mut late_max) = (0u64, 0u64, Duration::ZERO);
    loop {
        let due = start + Duration::from_nanos(((sent + skipped) as f64 * interval_ns) as u64);
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        late_max = late_max.max(now - due);
        while set.try_join_next().is_some() {}
        if inflight.load(Ordering::Relaxed) >= INFLIGHT_MAX {
            skipped += 1;
            continue;
        }
        sent += 1;
        let id = format!("l{}.{sent}", ctx.run_id);
        let (a, b) = two_distinct(&mut rng, pool.len());
        let (http, pool, url, lat, errors, inflight) = (
            ctx.http.clone(),
            pool.clone(),
            url.clone(),
            lat.clone(),
            errors.clone(),
            inflight.clone(),
        );
        inflight.fetch_add(1, Ordering::Relaxed);
        set.spawn(async move {
            let body = TransferReq {
                id: &id,
                from: &pool[a],
                to: &pool[b],
                amount: 1,
            };
            let t = Instant::now();
            let res = http.post_head(&url, &body, TRANSFER_TIMEOUT).await;
            let elapsed = t.elapsed();
            inflight.fetch_sub(1, Ordering::Relaxed);
            match res {
                Ok(h) if h.ok() => lat.lock().map(|mut l| l.record(elapsed)).unwrap_or(()),
                Ok(h) => errors
                    .lock()
                    .map(|mut e| e.add(format!("http {}", h.status)))
                    .unwrap_or(()),
                Err(e) => errors
                    .lock()
                    .map(|mut x| x.add(error_kind(&e)))
                    .unwrap_or(()),
            }
        });
    }
    // Every request has its own timeout, so draining is bounded by it.
    let drain_deadline = Instant::now() + TRANSFER_TIMEOUT + Duration::from_secs(1);
    while let Ok(Some(_)) = tokio::time::timeout_at(drain_deadline.into(), set.join_next()).await {}
    set.abort_all();

    let lat = lat.lock().map(|l| l.clone()).unwrap_or_default();
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    ctx.postings_total += lat.count();
    let s = lat.summary();
    let achieved = lat.count() as f64 / duration.as_secs_f64();
    println!(
        "  sent {} ({} ok = {}), skipped {skipped}, dispatcher late by up to {:.1} ms; latency {s}; errors: {errors}",
        thousands(sent),
        thousands(lat.count()),
        per_s(achieved),
        late_max.as_secs_f64() * 1000.0
    );
    rep.phase(
        "latency",
        json!({"peak_ops_per_s": peak, "target_rate_per_s": rate, "sent": sent, "ok": lat.count(),
               "skipped": skipped, "achieved_per_s": achieved, "dispatcher_late_ms_max": late_max.as_secs_f64() * 1000.0,
               "latency": s, "errors": errors}),
    );
    rep.row(
        "commit latency p99 at half of peak",
        format!(
            "p99 {:.2} ms (p50 {:.2}, p999 {:.2}) at {}",
            s.p99_ms,
            s.p50_ms,
            s.p999_ms,
            per_s(rate)
        ),
        "20 ms",
        "5 ms",
        if errors.total() + skipped > 0 && s.count == 0 {
            "error".into()
        } else {
            verdict_lower(s.p99_ms, 20.0, 5.0)
        },
    );
    Ok(())
}
