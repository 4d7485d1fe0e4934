//! Phase 8, PostgreSQL baseline (the single-transfer bar's aim): the same transfer transaction
//! on a single-node PostgreSQL on the same host, durable (`fsync` and `synchronous_commit` on,
//! as our nodes `fdatasync` before every acknowledgement), `--clients` connections in closed
//! loops for `--duration-s`.
//!
//! The transaction is one call of a PL/pgSQL function, so each transfer is one round trip and
//! one commit: idempotency check on the command id, both accounts locked in id order, overdraft
//! and status checks, both balances updated, the transfer row and two postings rows (with
//! balance after) inserted, the outcome recorded under the command id. Rejections are recorded
//! outcomes too. This is the best case for PostgreSQL (no client-side statements, no network).

use super::ctx::Ctx;
use super::report::{verdict_higher, Report};
use super::stats::{per_s, thousands, Errors, Lat};
use rand::{Rng, SeedableRng};
use readmodel::local::postgres::LocalPostgres;
use serde_json::json;
use std::time::{Duration, Instant};

/// Accounts the transfers move money between (as the single-transfer phase's pool).
const ACCOUNTS: usize = 1000;
/// Longest the baseline server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Opening balance of each account, minor units: large enough that nothing is refused.
const OPENING_MINOR: i64 = 1_000_000_000;

const SCHEMA: &str = r#"
CREATE TABLE accounts (
    id text PRIMARY KEY, currency text NOT NULL, balance bigint NOT NULL,
    overdraft_limit bigint NOT NULL, status text NOT NULL);
CREATE TABLE commands (id text PRIMARY KEY, outcome text NOT NULL);
CREATE TABLE transfers (
    id text PRIMARY KEY, debit text NOT NULL, credit text NOT NULL, amount bigint NOT NULL,
    posted_at timestamptz NOT NULL);
CREATE TABLE postings (
    seq bigserial PRIMARY KEY, account text NOT NULL, transfer_id text NOT NULL,
    amount bigint NOT NULL, balance_after bigint NOT NULL, at timestamptz NOT NULL);
CREATE INDEX postings_account_at ON postings (account, at);
CREATE FUNCTION transfer(cmd text, debit_id text, credit_id text, amt bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    prior text; d accounts; c accounts; outcome text; d_after bigint; c_after bigint;
BEGIN
    SELECT commands.outcome INTO prior FROM commands WHERE id = cmd;
    IF FOUND THEN RETURN prior; END IF;
    PERFORM 1 FROM accounts WHERE id IN (debit_id, credit_id) ORDER BY id FOR UPDATE;
    SELECT * INTO d FROM accounts WHERE id = debit_id;
    SELECT * INTO c FROM accounts WHERE id = credit_id;
    IF d.id IS NULL OR c.id IS NULL THEN
        outcome := 'account_not_found';
    ELSIF d.status <> 'open' OR c.status <> 'open' THEN
        outcome := 'account_not_open';
    ELSIF d.currency <> c.currency THEN
        outcome := 'currency_mismatch';
    ELSIF d.balance - amt < -d.overdraft_limit THEN
        outcome := 'insufficient_funds';
    ELSE
        UPDATE accounts SET balance = balance - amt WHERE id = debit_id
            RETURNING balance INTO d_after;
        UPDATE accounts SET balance = balance + amt WHERE id = credit_id
            RETURNING balance INTO c_after;
        INSERT INTO transfers VALUES (cmd, debit_id, credit_id, amt, now());
        INSERT INTO postings (account, transfer_id, amount, balance_after, at)
            VALUES (debit_id, cmd, -amt, d_after, now()), (credit_id, cmd, amt, c_after, now());
        outcome := 'posted';
    END IF;
    INSERT INTO commands VALUES (cmd, outcome);
    RETURN outcome;
END $$;
"#;

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || LocalPostgres::start_durable(&path)
    })
    .await??;
    let url = pg.url();
    let setup = connect_when_ready(&url).await?;
    setup.batch_execute(SCHEMA).await?;
    setup
        .execute(
            "INSERT INTO accounts SELECT 'a' || g, 'USD', $1, 0, 'open' \
             FROM generate_series(1, $2::int) g",
            &[&OPENING_MINOR, &(ACCOUNTS as i32)],
        )
        .await?;
    let settings = setup
        .query_one(
            "SELECT current_setting('server_version'), current_setting('fsync'), \
             current_setting('synchronous_commit')",
            &[],
        )
        .await?;
    let (version, fsync, sync_commit): (String, String, String) =
        (settings.get(0), settings.get(1), settings.get(2));
    anyhow::ensure!(
        fsync == "on" && sync_commit == "on",
        "baseline PostgreSQL must be durable (fsync {fsync}, synchronous_commit {sync_commit})"
    );
    let clients = ctx.args.clients;
    println!(
        "  PostgreSQL {version} (fsync on, synchronous_commit on), {clients} connections, {} s ...",
        ctx.args.duration_s
    );
    let duration = Duration::from_secs(ctx.args.duration_s);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = connect(&url).await?;
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare("SELECT transfer($1, $2, $3, $4)").await?;
            let mut rng = rand::rngs::SmallRng::seed_from_u64(c as u64 ^ 0x96);
            let (mut ok, mut lat, mut errors) = (0u64, Lat::new(), Errors::default());
            let mut n = 0u64;
            while Instant::now() < deadline {
                let from = rng.random_range(1..=ACCOUNTS);
                let to = (from + rng.random_range(1..ACCOUNTS) - 1) % ACCOUNTS + 1;
                let (cmd, debit, credit) =
                    (format!("pg.{c}.{n}"), format!("a{from}"), format!("a{to}"));
                n += 1;
                let t = Instant::now();
                match client
                    .query_one(&stmt, &[&cmd, &debit, &credit, &1i64])
                    .await
                {
                    Ok(row) if row.get::<_, String>(0) == "posted" => {
                        ok += 1;
                        lat.record(t.elapsed());
                    }
                    Ok(row) => errors.add(row.get::<_, String>(0)),
                    Err(e) => errors.add(format!("postgres: {e}")),
                }
            }
            anyhow::Ok((ok, lat, errors))
        }));
    }
    let (mut ok, mut lat, mut errors) = (0u64, Lat::new(), Errors::default());
    for t in tasks {
        let (o, l, e) = t.await??;
        ok += o;
        lat.merge(&l);
        errors.merge(&e);
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let total: i64 = setup
        .query_one("SELECT sum(balance)::bigint FROM accounts", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        total == OPENING_MINOR * ACCOUNTS as i64,
        "baseline lost or created money: total {total}"
    );
    let ops_s = ok as f64 / elapsed_s.max(1e-9);
    let s = lat.summary();
    println!(
        "  PostgreSQL baseline: {} posted = {}; latency {s}; errors: {errors}",
        thousands(ok),
        per_s(ops_s)
    );
    let ours = ctx.single_peak_ops_s;
    rep.phase(
        "pg_baseline",
        json!({"postgres_version": version, "clients": clients, "ok": ok, "elapsed_s": elapsed_s,
               "ops_per_s": ops_s, "latency": s, "errors": errors, "raftledger_single_peak_ops_per_s": ours}),
    );
    rep.row(
        &format!("single-node PostgreSQL, same transfer transaction, {clients} connections"),
        format!(
            "{} (p50 {:.2} / p99 {:.2} ms)",
            per_s(ops_s),
            s.p50_ms,
            s.p99_ms
        ),
        "",
        "",
        "baseline".into(),
    );
    match ours {
        Some(peak) => rep.row(
            "single transfers/s vs the PostgreSQL baseline",
            format!(
                "{} vs {} ({:.2}×)",
                per_s(peak),
                per_s(ops_s),
                peak / ops_s.max(1e-9)
            ),
            "5,000",
            "> PostgreSQL",
            verdict_higher(peak, 5_000.0, Some(ops_s)),
        ),
        None => rep.note("run the single phase too to compare with the PostgreSQL baseline"),
    }
    Ok(())
}

/// Connects once the server accepts connections (it listens before it finishes starting).
async fn connect_when_ready(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let t = Instant::now();
    loop {
        match connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) if t.elapsed() < STARTUP_TIMEOUT => {
                tracing::debug!(error = %e, "bench.pg_baseline.not_ready");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context("PostgreSQL did not accept connections")),
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "bench.pg_baseline.connection");
        }
    });
    Ok(client)
}
