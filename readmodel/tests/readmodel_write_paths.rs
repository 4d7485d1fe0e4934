//! The projector's write paths agree: the same stream (a few thousand events spanning three
//! days, with a poison event that quarantines accounts) projected by a bulk projector (one
//! big batch: account cache, history by binary COPY, history indexes deferred and rebuilt, as a
//! rebuild does) and by a small-batch projector (account cache off, so every batch loads its
//! rows; history by UNNEST inside the one batch statement) ends in identical tables and indexes.
//! Also: the checkpoint move refuses a batch that does not start at the checkpoint.

use async_nats::jetstream::{self, message::PublishMessage};
use readmodel::fold::BatchWrite;
use readmodel::local::nats::{create_ledger_stream, LocalNats};
use readmodel::local::postgres::LocalPostgres;
use readmodel::projector::{self, Target};
use readmodel::{deferred, schema, store};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Events in the stream.
const EVENTS: u64 = 3_000;
/// Customer accounts.
const ACCOUNTS: usize = 40;
/// Seq of the poison event (a wrong credit `balance_after`); later events touching its
/// accounts are parked too.
const POISON_SEQ: u64 = 2_800;
/// 2026-11-23T00:00:00Z in µs; events are 60 s apart, so postings span three UTC days.
const DAY0_US: i64 = 1_795_392_000_000_000;
const WORLD: &str = "@world:USD";

/// Event `seq` of a deterministic stream; `balances[0]` is the world account.
fn event(seq: u64, balances: &mut [i64]) -> Value {
    let acct = |i: usize| {
        if i == 0 {
            WORLD.to_string()
        } else {
            format!("acct-{i}")
        }
    };
    let ts = readmodel::event::format_ts_us(DAY0_US + seq as i64 * 60_000_000);
    let n = ACCOUNTS as u64 + 1;
    let (kind, data) = if seq <= n {
        let data = json!({"account": acct(seq as usize - 1), "currency": "USD", "overdraft_limit": 0, "metadata": "{}"});
        ("account_opened", data)
    } else {
        let k = seq - n;
        let c = 1 + (k % ACCOUNTS as u64) as usize;
        let d = 1 + ((k * 7 + 3) % ACCOUNTS as u64) as usize;
        // A deposit from the world account every third posting, or when `d` cannot pay.
        let d = if k % 3 == 0 || d == c || balances[d] < 5 {
            0
        } else {
            d
        };
        let amount = if d == 0 { 100 } else { 1 + (k % 4) as i64 };
        balances[d] -= amount;
        balances[c] += amount;
        let mut credit_after = balances[c];
        if seq == POISON_SEQ {
            credit_after += 1_000_000;
        }
        let data = json!({"transfer_id": format!("t{seq}"), "debit": acct(d), "credit": acct(c),
            "amount": amount, "debit_balance_after": balances[d], "credit_balance_after": credit_after,
            "from_pending": false, "memo": null});
        ("transfer_posted", data)
    };
    json!({"seq": seq, "index": seq, "timestamp": ts, "type": kind, "schema_version": 1,
           "command_id": format!("c{seq}"), "data": data})
}

async fn publish_all(js: &jetstream::Context) {
    let mut balances = vec![0i64; ACCOUNTS + 1];
    let mut acks = Vec::new();
    for seq in 1..=EVENTS {
        let payload = event(seq, &mut balances).to_string().into_bytes();
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(seq.to_string())
            .expected_last_sequence(seq - 1);
        acks.push(
            js.send_publish("ledger.events.test", msg)
                .await
                .expect("publish"),
        );
        if acks.len() >= 256 {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect postgres");
    tokio::spawn(conn);
    c
}

/// Starts a projector into a fresh schema `name`.
async fn projector(
    c: &tokio_postgres::Client,
    pg_url: &str,
    nats_url: &str,
    name: &str,
    batch_events_max: usize,
    cache_accounts_max: usize,
) -> watch::Sender<bool> {
    c.batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap();
    schema::migrate(c, name).await.unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let target = Target {
        postgres_url: pg_url.into(),
        nats_url: nats_url.into(),
        upstream: Default::default(),
        schema: name.into(),
        batch_events_max,
        cache_accounts_max,
        progress: None,
    };
    tokio::spawn(projector::run(target, stop_rx));
    stop
}

async fn wait_checkpoint(c: &tokio_postgres::Client, schema: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (at, _) = store::checkpoint(c, schema).await.unwrap();
        if at == seq {
            return;
        }
        assert!(Instant::now() < deadline, "{schema} stuck at {at} < {seq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows of `table` in one schema and not the other (both ways), and the row count.
async fn differences(c: &tokio_postgres::Client, table: &str, cols: &str) -> (i64, i64) {
    let (a, b) = ("paths_bulk", "paths_small");
    let row = c
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM ((SELECT {cols} FROM {a}.{table} EXCEPT ALL
                                                SELECT {cols} FROM {b}.{table})
                                               UNION ALL
                                               (SELECT {cols} FROM {b}.{table} EXCEPT ALL
                                                SELECT {cols} FROM {a}.{table})) d),
                        (SELECT count(*) FROM {a}.{table})"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_and_small_batch_paths_project_the_same_rows() {
    let dir = tempfile::Builder::new()
        .prefix("readmodel-paths-")
        .tempdir()
        .unwrap();
    let nats = LocalNats::start(&dir.path().join("nats")).expect("nats-server (install step)");
    let pg = LocalPostgres::start(&dir.path().join("pg")).expect("postgres (install step)");
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    create_ledger_stream(&js).await.unwrap();
    publish_all(&js).await;

    let c = connect(&pg.url()).await;
    let bulk = projector(&c, &pg.url(), &nats.url(), "paths_bulk", 10_000, 1_000).await;
    let deferred = deferred::drop_indexes(&c, "paths_bulk").await.unwrap();
    let small = projector(&c, &pg.url(), &nats.url(), "paths_small", 7, 0).await;
    wait_checkpoint(&c, "paths_bulk", EVENTS).await;
    wait_checkpoint(&c, "paths_small", EVENTS).await;
    let _ = (bulk.send(true), small.send(true));

    let mut c2 = connect(&pg.url()).await;
    deferred.restore(&mut c2).await.unwrap();
    assert_eq!(
        schema::indexes(&c, "paths_bulk").await.unwrap(),
        schema::indexes(&c, "paths_small").await.unwrap(),
        "deferred indexes rebuilt exactly"
    );

    let postings = (EVENTS - ACCOUNTS as u64 - 1) as i64;
    for (table, cols, rows) in [
        ("balances", "*", ACCOUNTS as i64 + 1),
        ("account_history", "*", -1),
        ("daily_totals", "*", 3),
        (
            "parked_events",
            "seq, subject, payload, reason, accounts",
            -1,
        ),
        ("quarantined_accounts", "*", -1),
        ("projection_checkpoint", "last_seq, last_event_ts_us", 1),
    ] {
        let (diff, n) = differences(&c, table, cols).await;
        assert_eq!(diff, 0, "{table}: rows differ between the paths");
        if rows >= 0 {
            assert_eq!(n, rows, "{table}: row count");
        }
    }
    let (_, history) = differences(&c, "account_history", "*").await;
    let (_, parked) = differences(&c, "parked_events", "seq").await;
    assert!(parked >= 1, "the poison event is parked");
    assert_eq!(
        history,
        2 * (postings - parked),
        "two history rows per posting that was not parked"
    );

    // Contiguity: a batch that does not start at the checkpoint is refused.
    let s = store::Store::prepare(&c, "paths_small").await.unwrap();
    let w = BatchWrite {
        last_seq: EVENTS + 2,
        ..Default::default()
    };
    let err = s.write_and_commit(&c, &w, EVENTS + 1).await.unwrap_err();
    assert!(format!("{err:#}").contains("is not at"), "{err:#}");
    assert_eq!(
        store::checkpoint(&c, "paths_small").await.unwrap().0,
        EVENTS
    );
}
