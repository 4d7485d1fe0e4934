//! Phase 5, time travel: loads `--postings` postings (one deposit per account, then random
//! transfers) through the batch API across 1000 fresh accounts, keeping each batch's leader
//! timestamp and log index as samples of the past. Once every node has applied the load, issues
//! `--queries` balance queries per mode — `?at=<random past RFC 3339>` and `?at_index=<random>`,
//! each `consistency=stale` and default (linearizable) — spread over all nodes, and reports
//! p50/p99. Plausibility: every
//! answer must be a 200 with a balance; at one random past index and one random past time the
//! 1000 balances must sum to the money deposited (the accounts only trade among themselves);
//! at the last index the historical balance must equal the current one.
//!
//! The loading ([`start_load`], [`extend`]) and the query modes ([`query_modes`],
//! [`check_conservation`]) are shared with the catch-up and growth phases.

use super::ctx::{two_distinct, Ctx};
use super::http::{Batch, Item};
use super::report::{at_scale, verdict_lower, Report};
use super::stats::{per_s, thousands, Errors, Lat, LatSummary};
use crate::api::render::rfc3339_us;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accounts the postings are spread over.
pub const ACCOUNTS: usize = 1000;
/// Minor units deposited per account: transfers of 1..=100 never exhaust it.
const DEPOSIT_MINOR: i64 = 1_000_000_000;
/// Transfers per load batch: well under the API's 4096 commands and 1 MiB body, and small
/// enough that 1M postings leave ~1000 (time, index) samples of the past.
const LOAD_BATCH_COMMANDS: usize = 1000;
/// Load batches in flight: keeps the leader's pipeline full without huge queues.
const LOAD_BATCHES_INFLIGHT: usize = 8;
/// Concurrent query clients: low, so the percentiles measure the query, not queueing.
const QUERY_CLIENTS: usize = 4;
/// Concurrent reads of the conservation check.
const CHECK_CLIENTS: usize = 16;
/// Timeout of one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the nodes may take to finish applying the load before the queries start.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A loaded data set (time travel, catch-up, growth).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Account ids.
    pub accounts: Arc<Vec<String>>,
    /// Postings committed by the load (deposits included).
    pub postings: u64,
    /// (leader timestamp µs, log index) of every transfer batch, in completion order.
    pub samples: Vec<(u64, u64)>,
    /// Prefix of the transfer ids: `{id_prefix}.{batch}.{i}`.
    pub id_prefix: String,
    /// Transfer batches committed so far (the next batch's number).
    pub batches: u64,
}

impl Loaded {
    fn time_range(&self) -> (u64, u64) {
        let lo = self.samples.iter().map(|s| s.0).min().unwrap_or(0);
        (lo, self.samples.iter().map(|s| s.0).max().unwrap_or(lo))
    }

    fn index_range(&self) -> (u64, u64) {
        let lo = self.samples.iter().map(|s| s.1).min().unwrap_or(0);
        (lo, self.samples.iter().map(|s| s.1).max().unwrap_or(lo))
    }
}

/// Opens and funds [`ACCOUNTS`] fresh accounts (`{tag}{run id}-{i}`): an empty data set whose
/// transfers [`extend`] adds.
pub async fn start_load(ctx: &mut Ctx, tag: &str) -> anyhow::Result<Loaded> {
    let accounts = Arc::new(
        ctx.open_and_fund(&format!("{tag}{}-", ctx.run_id), ACCOUNTS, DEPOSIT_MINOR)
            .await?,
    );
    Ok(Loaded {
        accounts,
        postings: ACCOUNTS as u64,
        samples: Vec::new(),
        id_prefix: format!("{tag}{}", ctx.run_id),
        batches: 0,
    })
}

/// The load's very first transfer (batch 0, item 0): what the growth phase replays and the
/// accounts its commit probe moves money between.
pub fn first_transfer(l: &Loaded) -> anyhow::Result<FirstTransfer<'_>> {
    match batch_commands(l, 0, 1).pop() {
        Some(Item::Transfer {
            id,
            from,
            to,
            amount,
        }) => Ok(FirstTransfer {
            id,
            from,
            to,
            amount,
        }),
        _ => anyhow::bail!("the load's first command is not a transfer"),
    }
}

/// The load's first transfer, as [`first_transfer`] gives it.
pub struct FirstTransfer<'a> {
    /// Transfer (command) id.
    pub id: String,
    /// Debited account.
    pub from: &'a str,
    /// Credited account.
    pub to: &'a str,
    /// Minor units.
    pub amount: i64,
}

/// The first `n` transfers of load batch `b`: deterministic (seeded by `b`), so a phase can
/// send one of them again (the growth phase replays the very first).
pub fn batch_commands<'a>(l: &'a Loaded, b: u64, n: u64) -> Vec<Item<'a>> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(b);
    (0..n)
        .map(|i| {
            let (x, y) = two_distinct(&mut rng, l.accounts.len());
            Item::Transfer {
                id: format!("{}.{b}.{i}", l.id_prefix),
                from: &l.accounts[x],
                to: &l.accounts[y],
                amount: rng.random_range(1..=100),
            }
        })
        .collect()
}

/// Commits `transfers` more random transfers among `l`'s accounts through the batch API.
pub async fn extend(ctx: &mut Ctx, l: &mut Loaded, transfers: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    let first = l.batches;
    let batches = transfers.div_ceil(LOAD_BATCH_COMMANDS as u64);
    println!(
        "  loading {} transfers over {ACCOUNTS} accounts in {batches} batches ...",
        thousands(transfers)
    );
    let (c, data): (&Ctx, &Loaded) = (ctx, l);
    let mut stream = futures::stream::iter(0..batches)
        .map(|k| async move {
            let n = (transfers - k * LOAD_BATCH_COMMANDS as u64).min(LOAD_BATCH_COMMANDS as u64);
            c.post_batch_retry(&Batch {
                atomic: false,
                commands: batch_commands(data, first + k, n),
            })
            .await
        })
        .buffer_unordered(LOAD_BATCHES_INFLIGHT);
    let (mut ok, mut rejected, mut samples, mut done) = (0u64, 0u64, Vec::new(), 0u64);
    while let Some(r) = stream.next().await {
        let r = r?;
        ok += r.ok;
        rejected += r.rejected;
        if let (Some(ts), Some(idx)) = (r.timestamp_us, r.index) {
            samples.push((ts, idx));
        }
        done += 1;
        if done % (batches / 10).max(1) == 0 {
            println!(
                "    {done}/{batches} batches, {} transfers, {:.0} s",
                thousands(ok),
                t.elapsed().as_secs_f64()
            );
        }
    }
    drop(stream);
    anyhow::ensure!(rejected == 0, "{rejected} load transfers were rejected");
    anyhow::ensure!(
        transfers == 0 || !samples.is_empty(),
        "no batch reply carried a timestamp and index"
    );
    ctx.postings_total += ok;
    l.postings += ok;
    l.batches += batches;
    l.samples.extend(samples);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  loaded {} transfers in {secs:.1} s ({}); {} postings in this data set",
        thousands(ok),
        per_s(ok as f64 / secs),
        thousands(l.postings)
    );
    Ok(())
}

/// Loads `--postings` postings unless this run already did; returns the data set.
pub async fn ensure_loaded(ctx: &mut Ctx) -> anyhow::Result<Loaded> {
    if let Some(l) = &ctx.loaded {
        return Ok(l.clone());
    }
    let transfers = ctx.args.postings.saturating_sub(ACCOUNTS as u64);
    let mut l = start_load(ctx, "t").await?;
    extend(ctx, &mut l, transfers).await?;
    ctx.loaded = Some(l.clone());
    Ok(l)
}

/// One query mode.
#[derive(Clone, Copy)]
struct Mode {
    by_time: bool,
    stale: bool,
}

impl Mode {
    fn label(self) -> String {
        let q = if self.by_time {
            "balance?at="
        } else {
            "balance?at_index="
        };
        format!(
            "{q}, {}",
            if self.stale {
                "consistency=stale"
            } else {
                "linearizable (default)"
            }
        )
    }

    fn key(self) -> String {
        format!(
            "{}_{}",
            if self.by_time { "at" } else { "at_index" },
            if self.stale { "stale" } else { "linearizable" }
        )
    }
}

fn query_path(account: &str, mode: Mode, time_us: u64, index: u64) -> String {
    let q = if mode.by_time {
        format!("at={}", rfc3339_us(time_us))
    } else {
        format!("at_index={index}")
    };
    format!(
        "/v1/accounts/{account}/balance?{q}{}",
        if mode.stale { "&consistency=stale" } else { "" }
    )
}

/// Sends `paths` (round-robin over nodes, `clients` at a time); returns latencies, errors and
/// the balances (None for failures) in the order of `paths`.
async fn query_all(
    ctx: &Ctx,
    paths: Vec<String>,
    clients: usize,
) -> (Lat, Errors, Vec<Option<i64>>) {
    let n = ctx.urls.len();
    let results: Vec<(Duration, Result<i64, String>)> =
        futures::stream::iter(paths.into_iter().enumerate())
            .map(|(k, p)| async move {
                let url = format!("{}{p}", ctx.urls[k % n]);
                let t = Instant::now();
                let r = match ctx.http.get_json(&url, QUERY_TIMEOUT).await {
                    Ok((h, v)) if h.status == 200 => v["balance"]
                        .as_i64()
                        .ok_or_else(|| "no balance in 200".to_owned()),
                    Ok((h, v)) => Err(format!(
                        "{} {}",
                        h.status,
                        v["error"]["code"].as_str().unwrap_or("")
                    )),
                    Err(e) => Err(super::http::error_kind(&e).to_owned()),
                };
                (t.elapsed(), r)
            })
            .buffered(clients)
            .collect()
            .await;
    let (mut lat, mut errors, mut values) = (
        Lat::new(),
        Errors::default(),
        Vec::with_capacity(results.len()),
    );
    for (d, r) in results {
        match r {
            Ok(b) => {
                lat.record(d);
                values.push(Some(b));
            }
            Err(e) => {
                errors.add(e);
                values.push(None);
            }
        }
    }
    (lat, errors, values)
}

/// Sum of every account's balance at one past point must equal the money deposited.
async fn conservation(
    ctx: &Ctx,
    l: &Loaded,
    mode: Mode,
    time_us: u64,
    index: u64,
) -> anyhow::Result<()> {
    let paths = l
        .accounts
        .iter()
        .map(|a| query_path(a, mode, time_us, index))
        .collect();
    let (_, errors, values) = query_all(ctx, paths, CHECK_CLIENTS).await;
    anyhow::ensure!(
        errors.total() == 0,
        "conservation check ({}): {errors}",
        mode.label()
    );
    let sum: i64 = values.iter().flatten().sum();
    let expected = DEPOSIT_MINOR * l.accounts.len() as i64;
    anyhow::ensure!(
        sum == expected,
        "conservation check ({}): balances sum to {sum}, deposited {expected}",
        mode.label()
    );
    Ok(())
}

/// At the last loaded index each historical balance equals the current balance.
async fn latest_matches_current(ctx: &Ctx, l: &Loaded, last_index: u64) -> anyhow::Result<()> {
    for a in l.accounts.iter().take(5) {
        let base = &ctx.urls[0];
        let (h1, hist) = ctx
            .http
            .get_json(
                &format!(
                    "{base}{}",
                    query_path(
                        a,
                        Mode {
                            by_time: false,
                            stale: false
                        },
                        0,
                        last_index
                    )
                ),
                QUERY_TIMEOUT,
            )
            .await?;
        let (h2, cur) = ctx
            .http
            .get_json(&format!("{base}/v1/accounts/{a}"), QUERY_TIMEOUT)
            .await?;
        anyhow::ensure!(
            h1.ok() && h2.ok(),
            "account {a}: statuses {} / {}",
            h1.status,
            h2.status
        );
        anyhow::ensure!(
            hist["balance"] == cur["balance"],
            "account {a}: balance at_index {last_index} {} != current {}",
            hist["balance"],
            cur["balance"]
        );
    }
    Ok(())
}

/// Latency and errors of one query mode.
pub struct ModeResult {
    /// E.g. `balance?at=, consistency=stale`.
    pub label: String,
    /// E.g. `at_stale` (JSON key).
    pub key: String,
    /// Percentiles.
    pub summary: LatSummary,
    /// Failed queries by kind.
    pub errors: Errors,
}

/// Sends `queries` balance queries per mode (`at` / `at_index`, stale / linearizable) at random
/// past points of `l`, spread over all nodes, `QUERY_CLIENTS` at a time; prints each mode.
pub async fn query_modes(ctx: &Ctx, l: &Loaded, queries: usize) -> Vec<ModeResult> {
    let ((t_lo, t_hi), (i_lo, i_hi)) = (l.time_range(), l.index_range());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x7173);
    let mut out = Vec::new();
    for (by_time, stale) in [(true, true), (true, false), (false, true), (false, false)] {
        let mode = Mode { by_time, stale };
        let paths: Vec<String> = (0..queries)
            .map(|_| {
                let a = &l.accounts[rng.random_range(0..l.accounts.len())];
                query_path(
                    a,
                    mode,
                    rng.random_range(t_lo..=t_hi),
                    rng.random_range(i_lo..=i_hi),
                )
            })
            .collect();
        let t = Instant::now();
        let (lat, errors, _) = query_all(ctx, paths, QUERY_CLIENTS).await;
        let summary = lat.summary();
        println!(
            "  {}: {} queries in {:.1} s; {summary}; errors: {errors}",
            mode.label(),
            thousands(queries as u64),
            t.elapsed().as_secs_f64()
        );
        out.push(ModeResult {
            label: mode.label(),
            key: mode.key(),
            summary,
            errors,
        });
    }
    out
}

/// Plausibility at one random past index and one random past time: the balances of all of
/// `l`'s accounts sum to the money deposited into them. Returns a description of the points.
pub async fn check_conservation(ctx: &Ctx, l: &Loaded, seed: u64) -> anyhow::Result<String> {
    let ((t_lo, t_hi), (i_lo, i_hi)) = (l.time_range(), l.index_range());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let (t_mid, i_mid) = (rng.random_range(t_lo..=t_hi), rng.random_range(i_lo..=i_hi));
    for by_time in [false, true] {
        let mode = Mode {
            by_time,
            stale: true,
        };
        conservation(ctx, l, mode, t_mid, i_mid).await?;
    }
    Ok(format!("index {i_mid} and {}", rfc3339_us(t_mid)))
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let l = ensure_loaded(ctx).await?;
    anyhow::ensure!(
        !l.samples.is_empty(),
        "--postings must exceed {ACCOUNTS} to have a past to query"
    );
    // Query the history, not the tail of the load: let every node finish applying it first.
    super::failover::wait_all_applied(ctx, SETTLE_TIMEOUT).await?;
    super::settle::wait_history_moved(ctx, rep, "the time-travel load").await;
    let q = ctx.args.queries;
    let mut results = serde_json::Map::new();
    for m in query_modes(ctx, &l, q).await {
        let s = m.summary;
        results.insert(
            m.key,
            json!({"queries": q, "latency": s, "errors": m.errors}),
        );
        let verdict = if m.errors.total() > 0 {
            format!("{} errors", m.errors.total())
        } else {
            verdict_lower(s.p99_ms, 5.0, 2.0)
        };
        rep.row(
            &format!("time travel {} p99", m.label),
            format!(
                "p99 {:.2} ms (p50 {:.2}) over {} postings",
                s.p99_ms,
                s.p50_ms,
                thousands(l.postings)
            ),
            "5 ms",
            "2 ms",
            at_scale(verdict, l.postings, 1_000_000),
        );
    }
    let points = check_conservation(ctx, &l, 0x7174).await?;
    let i_hi = l.index_range().1;
    latest_matches_current(ctx, &l, i_hi).await?;
    println!("  plausibility: balances sum to the deposits at {points}; at_index {i_hi} = current balance");
    results.insert("postings".into(), json!(l.postings));
    results.insert("clients".into(), json!(QUERY_CLIENTS));
    results.insert("plausibility".into(), json!("ok"));
    rep.phase("time_travel", serde_json::Value::Object(results));
    Ok(())
}
