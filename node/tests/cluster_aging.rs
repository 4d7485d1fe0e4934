//! An aged cluster restarts: three nodes with 64 KiB WAL segments and a tiny snapshot threshold
//! go through many compactions that delete WAL segments on every node (counted from the WAL
//! directories, not assumed), then the whole cluster is SIGKILLed at once and restarted, aged
//! further, stopped gracefully (SIGTERM) and restarted again. After each restart: a leader
//! within 5 s; every acknowledged write (batches, single transfers, deposits, account opens)
//! retried with the same id and body answers 200 with its original body and
//! `Idempotent-Replayed: true`; every node's balances equal the acknowledged history; all nodes
//! agree on the state hash at one applied index.

mod common;

use common::{
    balances, write_ok, Http, Resp, SegmentWatch, TestCluster, WalSegments, CATCH_UP_WAIT,
    LEADER_WAIT,
};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// WAL segment size: the smallest the node accepts, so a few dozen entries fill a segment.
const SEGMENT_BYTES: &str = "65536";
/// Snapshot (and then purge) after this many entries.
const SNAPSHOT_EVERY_ENTRIES: &str = "32";
/// Entries kept behind a snapshot when purging.
const LOGS_KEPT_AFTER_SNAPSHOT: &str = "8";
/// Segment-deletion events every node must show before the first whole-cluster restart.
const DELETIONS_BEFORE_KILL: u64 = 5;
/// Further segment-deletion events every node must show before the graceful restart.
const DELETIONS_BEFORE_TERM: u64 = 3;
/// Liveness bound: a leader every node agrees on, counted from restarting the last node.
const RESTART_LEADER_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for SIGTERMed nodes to finish their graceful shutdown.
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Transfers per batch request.
const BATCH_TRANSFERS: usize = 32;
/// Memo of every batched transfer: bulk, so that a few dozen entries fill a segment.
const MEMO: &str = "aging: a memo long enough to fill WAL segments fast";
/// One single transfer after every this many batches.
const SINGLE_EVERY_BATCHES: u64 = 4;
/// Upper bound on batch requests of one aging phase (the phase fails past it).
const AGING_BATCHES_MAX: u64 = 3_000;
/// Retries in flight at once when replaying the acknowledged writes.
const REPLAY_CONCURRENCY: usize = 8;
/// Money each account starts with: the workload never comes near an overdraft.
const FUNDING: i64 = 1_000_000_000;
const ACCOUNTS: [&str; 6] = ["g0", "g1", "g2", "g3", "g4", "g5"];
const WORLD: &str = "@world:USD";

/// One acknowledged write and its answer.
struct Acked {
    path: &'static str,
    body: Value,
    answer: Resp,
}

/// Every acknowledged write, and the balances they imply.
#[derive(Default)]
struct Book {
    acked: Vec<Acked>,
    expected: BTreeMap<String, i64>,
    batches: u64,
}

impl Book {
    /// Writes `body` to `path` through any node (retrying the same request) and records the
    /// acknowledged answer; `moves` are the balance changes it implies once accepted.
    async fn write(
        &mut self,
        nodes: &[Http],
        path: &'static str,
        body: Value,
        moves: &[(&str, i64)],
    ) {
        let first = self.acked.len();
        let answer = write_ok(nodes, first, path, &body).await;
        if let Some(results) = answer.body["results"].as_array() {
            for r in results {
                assert_eq!(r["ok"], true, "batch item rejected: {r}");
            }
        }
        for (account, delta) in moves {
            *self.expected.entry((*account).to_owned()).or_default() += delta;
        }
        self.acked.push(Acked { path, body, answer });
    }

    /// Opens and funds the accounts.
    async fn open_bank(&mut self, nodes: &[Http]) {
        for a in ACCOUNTS {
            self.write(
                nodes,
                "/v1/accounts",
                json!({"id": a, "currency": "USD"}),
                &[],
            )
            .await;
            self.write(
                nodes,
                "/v1/deposits",
                json!({"id": format!("fund-{a}"), "account": a, "amount": FUNDING}),
                &[(a, FUNDING), (WORLD, -FUNDING)],
            )
            .await;
        }
    }

    /// One batch of transfers around the ring of accounts, and now and then a single transfer.
    async fn step(&mut self, nodes: &[Http]) {
        let b = self.batches;
        self.batches += 1;
        let mut commands = Vec::new();
        let mut moves = Vec::new();
        for k in 0..BATCH_TRANSFERS {
            // The offset is 1..=5: never a transfer to the same account.
            let offset = 1 + b as usize % (ACCOUNTS.len() - 1);
            let (from, to) = (
                ACCOUNTS[k % ACCOUNTS.len()],
                ACCOUNTS[(k + offset) % ACCOUNTS.len()],
            );
            let amount = (b % 9 + k as u64 % 5 + 1) as i64;
            commands.push(
                json!({"type": "transfer", "id": format!("ab{b}-{k}"), "from": from,
                "to": to, "amount": amount, "memo": MEMO}),
            );
            moves.extend([(from, -amount), (to, amount)]);
        }
        let body = json!({"id": format!("batch-{b}"), "atomic": b % 2 == 0, "commands": commands});
        self.write(nodes, "/v1/batches", body, &moves).await;
        if b % SINGLE_EVERY_BATCHES == 0 {
            let (from, to) = (ACCOUNTS[b as usize % 6], ACCOUNTS[(b as usize + 3) % 6]);
            let amount = (b % 13 + 1) as i64;
            let body = json!({"id": format!("at{b}"), "from": from, "to": to, "amount": amount});
            self.write(
                nodes,
                "/v1/transfers",
                body,
                &[(from, -amount), (to, amount)],
            )
            .await;
        }
    }
}

fn node_args() -> Vec<&'static str> {
    vec![
        "--wal-segment-bytes",
        SEGMENT_BYTES,
        "--snapshot-every-entries",
        SNAPSHOT_EVERY_ENTRIES,
        "--logs-kept-after-snapshot",
        LOGS_KEPT_AFTER_SNAPSHOT,
    ]
}

fn watch_dirs(tc: &TestCluster) -> BTreeMap<u64, std::path::PathBuf> {
    tc.ids()
        .into_iter()
        .map(|id| (id, tc.lc.node(id).data_dir.join("wal")))
        .collect()
}

fn describe(seen: &BTreeMap<u64, WalSegments>) -> String {
    seen.iter()
        .map(|(id, w)| {
            format!(
                "node {id}: {} deletion events, {} segments deleted, {} present (lowest {:?}), at most {} at once",
                w.deletion_events,
                w.segments_deleted,
                w.present.len(),
                w.present.first(),
                w.files_max
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes until every node has shown `more` further segment-deletion events.
async fn age(tc: &TestCluster, book: &mut Book, watch: &SegmentWatch, more: u64) {
    let nodes = tc.https(&tc.ids());
    let floor: BTreeMap<u64, u64> = watch
        .snapshot()
        .iter()
        .map(|(id, w)| (*id, w.deletion_events))
        .collect();
    let target = |seen: &BTreeMap<u64, WalSegments>| {
        tc.ids().iter().all(|id| {
            let now = seen.get(id).map_or(0, |w| w.deletion_events);
            now >= floor.get(id).copied().unwrap_or(0) + more
        })
    };
    let start = book.batches;
    while !target(&watch.snapshot()) {
        assert!(
            book.batches - start < AGING_BATCHES_MAX,
            "{AGING_BATCHES_MAX} batches without {more} segment-deletion events on every node: {}",
            describe(&watch.snapshot())
        );
        book.step(&nodes).await;
    }
    tc.phase(&format!(
        "aged by {} batches: {}",
        book.batches - start,
        describe(&watch.snapshot())
    ));
}

/// Sends `sig` (`-KILL`, `-TERM`) to every node process in one `kill` call.
fn signal_all(tc: &TestCluster, sig: &str) {
    let pids: Vec<String> = tc
        .ids()
        .into_iter()
        .map(|id| tc.lc.node(id).pid().expect("node running").to_string())
        .collect();
    let st = std::process::Command::new("kill")
        .arg(sig)
        .args(&pids)
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} {pids:?} failed");
}

/// Why nodes are down: each exited node's last log lines.
fn down_report(tc: &mut TestCluster) -> String {
    let mut out = Vec::new();
    for id in tc.ids() {
        if tc.lc.is_running(id) {
            continue;
        }
        let log = std::fs::read_to_string(&tc.lc.node(id).log_path).unwrap_or_default();
        out.push(format!("node {id} exited: {}", exit_error(&log)));
    }
    if out.is_empty() {
        "every node process is running".into()
    } else {
        out.join("\n")
    }
}

/// The node's last `Error:` report (else the log's last line).
fn exit_error(log: &str) -> String {
    node::local_cluster::last_error_report(log)
        .unwrap_or_else(|| log.lines().last().unwrap_or("(empty log)").to_owned())
}

/// Restarts every node and checks the cluster against the book.
async fn restart_and_verify(tc: &mut TestCluster, book: &Book, label: &str) {
    for id in tc.ids() {
        tc.lc.start(id).expect("restart node");
    }
    let t0 = Instant::now();
    let leader = match tc.lc.wait_leader(RESTART_LEADER_WAIT).await {
        Some(l) => l,
        None => panic!(
            "{label}: no agreed leader within {RESTART_LEADER_WAIT:?} of restarting every node\n{}",
            down_report(tc)
        ),
    };
    tc.phase(&format!(
        "{label}: leader {leader} after {} ms",
        t0.elapsed().as_millis()
    ));
    assert!(
        tc.lc.wait_ready(LEADER_WAIT).await,
        "{label}: nodes not ready\n{}",
        down_report(tc)
    );
    let ids = tc.ids();
    let nodes = tc.https(&ids);
    let replies: Vec<(&Acked, Resp)> = futures::stream::iter(book.acked.iter().enumerate())
        .map(|(i, a)| {
            let nodes = &nodes;
            async move { (a, write_ok(nodes, i, a.path, &a.body).await) }
        })
        .buffer_unordered(REPLAY_CONCURRENCY)
        .collect()
        .await;
    for (a, r) in replies {
        let what = format!("{label}: retry of POST {} {}", a.path, a.body);
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert_eq!(r.header("idempotent-replayed"), Some("true"), "{what}");
        assert_eq!(
            r.text, a.answer.text,
            "{what}: body differs from the original"
        );
    }
    tc.phase(&format!(
        "{label}: {} acknowledged writes replayed their original answers",
        book.acked.len()
    ));
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");
    let mut accounts: Vec<&str> = ACCOUNTS.to_vec();
    accounts.push(WORLD);
    let q = format!("&consistency=stale&min_index={committed}");
    for id in &ids {
        let (_, got) = balances(&tc.http(*id), &accounts, &q).await;
        assert_eq!(
            got, book.expected,
            "{label}: node {id} balances differ from the acknowledged history"
        );
    }
    let (_, lin) = balances(&tc.http(leader), &accounts, "").await;
    assert_eq!(lin, book.expected, "{label}: linearizable balances");
    let at = tc.wait_same_hash(&ids, CATCH_UP_WAIT).await;
    tc.phase(&format!(
        "{label}: balances match on every node; equal state hash at index {at}"
    ));
    tc.assert_no_panics();
}

fn count_in_log(tc: &TestCluster, id: u64, needle: &str) -> usize {
    std::fs::read_to_string(&tc.lc.node(id).log_path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_cluster_survives_whole_cluster_restarts() {
    let args = node_args();
    let mut tc = TestCluster::start("aging", 3, &[], &args).await;
    tc.phase(&format!("node flags: {args:?}"));
    let watch = SegmentWatch::start(watch_dirs(&tc));
    let mut book = Book::default();
    let nodes = tc.https(&tc.ids());
    book.open_bank(&nodes).await;

    age(&tc, &mut book, &watch, DELETIONS_BEFORE_KILL).await;
    let before_kill = watch.snapshot();
    for (id, w) in &before_kill {
        assert!(
            w.deletion_events >= DELETIONS_BEFORE_KILL,
            "node {id}: only {} segment-deletion events before the restart",
            w.deletion_events
        );
    }
    tc.phase("SIGKILL every node at once");
    signal_all(&tc, "-KILL");
    for id in tc.ids() {
        tc.lc.kill(id); // reaps the killed process
    }
    restart_and_verify(&mut tc, &book, "after SIGKILL of the whole cluster").await;

    age(&tc, &mut book, &watch, DELETIONS_BEFORE_TERM).await;
    let stopping: Vec<usize> = tc
        .ids()
        .into_iter()
        .map(|id| count_in_log(&tc, id, "node.stopping"))
        .collect();
    tc.phase("SIGTERM every node at once");
    signal_all(&tc, "-TERM");
    let deadline = Instant::now() + STOP_WAIT;
    while !tc.running().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nodes {:?} still running {STOP_WAIT:?} after SIGTERM",
            tc.running()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (k, id) in tc.ids().into_iter().enumerate() {
        assert!(
            count_in_log(&tc, id, "node.stopping") > stopping[k],
            "node {id} did not take the graceful shutdown path"
        );
        tc.lc.kill(id); // clears the exited process's slot
    }
    restart_and_verify(&mut tc, &book, "after SIGTERM of the whole cluster").await;
    tc.phase(&format!(
        "done: {} batches, {} acknowledged writes; {}",
        book.batches,
        book.acked.len(),
        describe(&watch.snapshot())
    ));
}
