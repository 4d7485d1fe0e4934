//! Phase 1, batch throughput: `--clients` concurrent clients each POST `/v1/batches` of
//! `--batch-size` non-atomic transfers (amount 1, random pool accounts) to the leader, in a
//! closed loop for `--duration-s`. Counts only inner commands reported `ok` in 2xx replies;
//! the rate is divided by the time until the last in-flight batch returned.

use super::ctx::{two_distinct, Ctx, BATCH_TIMEOUT};
use super::http::{error_kind, Batch, Item};
use super::report::{verdict_higher, Report};
use super::stats::{per_s, thousands, Errors, Lat};
use rand::SeedableRng;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Default)]
struct ClientTally {
    committed: u64,
    rejected: u64,
    batches_ok: u64,
    lat: Lat,
    errors: Errors,
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let pool = ctx.pool().await?;
    let (leader, url) = ctx.leader().await?;
    let url = format!("{url}/v1/batches");
    let (clients, size) = (ctx.args.clients, ctx.args.batch_size);
    let duration = Duration::from_secs(ctx.args.duration_s);
    println!(
        "  {clients} clients x batches of {size} transfers -> leader node {leader}, {} s",
        ctx.args.duration_s
    );
    let term_before = ctx.max_term().await;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let (http, pool, url) = (ctx.http.clone(), pool.clone(), url.clone());
        let prefix = format!("b{}.{c}.", ctx.run_id);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(c as u64);
            let mut t = ClientTally::default();
            let mut k = 0u64;
            while Instant::now() < deadline {
                k += 1;
                let commands = (0..size)
                    .map(|i| {
                        let (a, b) = two_distinct(&mut rng, pool.len());
                        Item::Transfer {
                            id: format!("{prefix}{k}.{i}"),
                            from: &pool[a],
                            to: &pool[b],
                            amount: 1,
                        }
                    })
                    .collect();
                let sent = Instant::now();
                match http
                    .post_batch(
                        &url,
                        &Batch {
                            atomic: false,
                            commands,
                        },
                        BATCH_TIMEOUT,
                    )
                    .await
                {
                    Ok(r) if r.ok_status() => {
                        t.lat.record(sent.elapsed());
                        t.batches_ok += 1;
                        t.committed += r.ok;
                        t.rejected += r.rejected;
                        if let Some(code) = r.error_code {
                            t.errors.add(format!("rejected {code}"));
                        }
                    }
                    Ok(r) => {
                        t.errors
                            .add(format!("{} {}", r.status, r.error_code.unwrap_or_default()));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        t.errors.add(error_kind(&e));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            t
        }));
    }
    let mut total = ClientTally::default();
    for task in tasks {
        let t = task.await?;
        total.committed += t.committed;
        total.rejected += t.rejected;
        total.batches_ok += t.batches_ok;
        total.lat.merge(&t.lat);
        total.errors.merge(&t.errors);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let term_changes = ctx.max_term().await.saturating_sub(term_before);
    ctx.postings_total += total.committed;
    let rate = total.committed as f64 / elapsed;
    let lat = total.lat.summary();
    println!(
        "  committed {} transfers in {elapsed:.1} s = {}; {} batches ok; batch latency {lat}; rejected {}; errors: {}; term changes: {term_changes}",
        thousands(total.committed),
        per_s(rate),
        total.batches_ok,
        total.rejected,
        total.errors
    );
    rep.phase(
        "batch",
        json!({"clients": clients, "batch_size": size, "elapsed_s": elapsed, "committed": total.committed,
               "rejected": total.rejected, "batches_ok": total.batches_ok, "transfers_per_s": rate,
               "batch_latency": lat, "errors": total.errors, "term_changes": term_changes}),
    );
    rep.row(
        "transfers committed/s via the batch API",
        format!(
            "{} ({clients} clients x {size}; {term_changes} term changes)",
            per_s(rate)
        ),
        "20,000",
        "100,000",
        verdict_higher(rate, 20_000.0, Some(100_000.0)),
    );
    Ok(())
}
