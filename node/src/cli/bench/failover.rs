//! Phase 4, failover (self-started cluster only): per trial, a light write load of a few
//! clients runs, the leader is SIGKILLed, and the time from the kill to the first write that
//! committed after it is measured. That write is a 2xx whose attempt was sent after the kill, to
//! a surviving node, reporting an `X-Ledger-Index` above every index seen before the kill.
//! Clients use ~300 ms timeouts and retry the same id on the next node. The killed node is then
//! restarted and must catch up (applied >= the leader's committed) before the next trial.

use super::ctx::{two_distinct, Ctx};
use super::http::TransferReq;
use super::report::{verdict_lower, Report};
use super::stats::ms;
use rand::SeedableRng;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent writers during a trial: enough to see the first committed write promptly.
const WRITERS: usize = 4;
/// Per-attempt timeout: a dead leader must not hold a writer for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);
/// Pause after a failed attempt before trying the next node.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Attempts per write before the writer gives up on it (bounds the loop; ~100 s).
const ATTEMPTS_MAX: u32 = 320;
/// Steady load before the kill.
const STEADY: Duration = Duration::from_secs(1);
/// Longest we wait for writes to commit again after the kill.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest the restarted node may take to catch up between trials.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(60);

struct KillMark {
    at: Instant,
    killed_pos: usize,
    index_before: u64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    last_index: AtomicU64,
    kill: Mutex<Option<KillMark>>,
    recovered: Mutex<Option<Instant>>,
}

impl Shared {
    fn on_ok(&self, pos: usize, attempt_at: Instant, index: u64) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.last_index.fetch_max(index, Ordering::Relaxed);
        let counts = match self.kill.lock() {
            Ok(k) => k.as_ref().is_some_and(|k| {
                attempt_at >= k.at && pos != k.killed_pos && index > k.index_before
            }),
            Err(_) => false,
        };
        if counts {
            if let Ok(mut r) = self.recovered.lock() {
                r.get_or_insert_with(Instant::now);
            }
        }
    }
}

fn writer(
    ctx: &Ctx,
    shared: Arc<Shared>,
    pool: Arc<Vec<String>>,
    w: usize,
    trial: usize,
) -> tokio::task::JoinHandle<()> {
    let urls: Vec<String> = ctx
        .urls
        .iter()
        .map(|u| format!("{u}/v1/transfers"))
        .collect();
    let (http, prefix) = (ctx.http.clone(), format!("f{}.{trial}.{w}.", ctx.run_id));
    tokio::spawn(async move {
        let mut rng = rand::rngs::SmallRng::seed_from_u64((trial * WRITERS + w) as u64);
        let mut pos = w % urls.len();
        let mut n = 0u64;
        while !shared.stop.load(Ordering::Relaxed) {
            n += 1;
            let id = format!("{prefix}{n}");
            let (a, b) = two_distinct(&mut rng, pool.len());
            let body = TransferReq {
                id: &id,
                from: &pool[a],
                to: &pool[b],
                amount: 1,
            };
            for _ in 0..ATTEMPTS_MAX {
                let at = Instant::now();
                match http.post_head(&urls[pos], &body, ATTEMPT_TIMEOUT).await {
                    Ok(h) if h.ok() => {
                        shared.on_ok(pos, at, h.index.unwrap_or(0));
                        break;
                    }
                    _ => {
                        pos = (pos + 1) % urls.len();
                        if shared.stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        }
    })
}

/// Waits until every node has applied the leader's current committed index.
pub async fn wait_all_applied(ctx: &Ctx, timeout: Duration) -> anyhow::Result<()> {
    let target = ctx.leader_committed().await?;
    for id in 1..=ctx.urls.len() as u64 {
        wait_applied(ctx, id, target, timeout).await?;
    }
    Ok(())
}

/// Waits until node `id` has applied at least `target`; returns the time it took.
pub async fn wait_applied(
    ctx: &Ctx,
    id: u64,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let url = &ctx.urls[(id - 1) as usize];
    loop {
        let applied = ctx
            .http
            .status(url)
            .await
            .and_then(|s| s["applied"].as_u64())
            .unwrap_or(0);
        if applied >= target {
            return Ok(t.elapsed());
        }
        anyhow::ensure!(
            t.elapsed() < timeout,
            "node {id} applied {applied} < {target} after {} s",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Trial {
    failover: Option<Duration>,
    new_leader: u64,
    rejoin: Duration,
    writes_ok: u64,
}

async fn trial(ctx: &mut Ctx, pool: Arc<Vec<String>>, i: usize) -> anyhow::Result<Trial> {
    ctx.wait_healthy().await?;
    let (leader, _) = ctx.leader().await?;
    let shared = Arc::new(Shared::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| writer(ctx, shared.clone(), pool.clone(), w, i))
        .collect();
    tokio::time::sleep(STEADY).await;
    let index_before = shared.last_index.load(Ordering::Relaxed);
    let at = Instant::now();
    if let Ok(mut k) = shared.kill.lock() {
        *k = Some(KillMark {
            at,
            killed_pos: (leader - 1) as usize,
            index_before,
        });
    }
    ctx.cluster
        .as_mut()
        .map(|c| c.kill(leader))
        .ok_or_else(|| anyhow::anyhow!("failover needs an owned cluster"))?;
    let mut failover = None;
    while at.elapsed() < RECOVERY_TIMEOUT {
        if let Some(r) = shared.recovered.lock().ok().and_then(|r| *r) {
            failover = Some(r - at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for w in writers {
        // Each attempt is bounded by ATTEMPT_TIMEOUT and the writers check `stop` between them.
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    let (new_leader, _) = ctx.leader().await?;
    ctx.cluster.as_mut().map(|c| c.start(leader)).transpose()?;
    let target = ctx.leader_committed().await?;
    let rejoin = wait_applied(ctx, leader, target, REJOIN_TIMEOUT).await?;
    Ok(Trial {
        failover,
        new_leader,
        rejoin,
        writes_ok: shared.ok.load(Ordering::Relaxed),
    })
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let metric = "failover: leader SIGKILL -> first committed write (p99)";
    if !ctx.owned() {
        rep.note("failover skipped: it needs a self-started cluster (it kills and restarts nodes); not possible with --target");
        rep.row(
            metric,
            "skipped (--target)".into(),
            "1.5 s",
            "1 s",
            "n/a".into(),
        );
        return Ok(());
    }
    let pool = ctx.pool().await?;
    let trials = ctx.args.failover_trials;
    let (mut times_ms, mut failed, mut rows) = (Vec::new(), 0usize, Vec::new());
    for i in 0..trials {
        let t = trial(ctx, pool.clone(), i).await?;
        ctx.postings_total += t.writes_ok;
        let f_ms = t.failover.map(|d| d.as_secs_f64() * 1000.0);
        match f_ms {
            Some(v) => times_ms.push(v),
            None => failed += 1,
        }
        println!(
            "  trial {}/{trials}: failover {}, new leader node {}, old leader rejoined in {}, {} writes ok",
            i + 1,
            f_ms.map(ms).unwrap_or_else(|| format!("none within {} s", RECOVERY_TIMEOUT.as_secs())),
            t.new_leader,
            ms(t.rejoin.as_secs_f64() * 1000.0),
            t.writes_ok
        );
        rows.push(json!({"failover_ms": f_ms, "new_leader": t.new_leader, "rejoin_ms": t.rejoin.as_secs_f64() * 1000.0}));
    }
    times_ms.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        pct(&times_ms, 0.5),
        pct(&times_ms, 0.99),
        times_ms.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  failover over {} trials: p50 {} / p99 {} / max {}; {failed} without recovery",
        times_ms.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    rep.phase(
        "failover",
        json!({"trials": rows, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "unrecovered": failed}),
    );
    let verdict = if failed > 0 || times_ms.is_empty() {
        "ABOVE MUST".into()
    } else {
        verdict_lower(p99 / 1000.0, 1.5, 1.0)
    };
    rep.row(
        metric,
        format!(
            "p99 {} (p50 {}, max {}; {trials} trials{})",
            ms(p99),
            ms(p50),
            ms(max),
            if failed > 0 {
                format!(", {failed} unrecovered")
            } else {
                String::new()
            }
        ),
        "1.5 s",
        "1 s",
        verdict,
    );
    Ok(())
}
