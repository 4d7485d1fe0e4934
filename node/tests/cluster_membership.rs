//! Membership changes on real node processes: a fourth node joins through `--join` (learner,
//! then voter), a voter is removed with `POST /cluster/membership`, and the new voter counts
//! toward the quorum.

mod common;

use common::{
    balances, eventually, exe, log_panics, open_accounts, write_ok, Http, TestCluster,
    CATCH_UP_WAIT,
};
use node::local_cluster::LocalCluster;
use serde_json::{json, Value};
use std::time::Duration;

/// Longest wait for a joining node to become a voter (add learner waits for catch-up).
const JOIN_WAIT: Duration = Duration::from_secs(60);

fn voters(status: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = status["voters"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Dumps the joiner's log if the test panics (the 3 initial nodes are dumped by `TestCluster`).
struct JoinerGuard(LocalCluster);

impl Drop for JoinerGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let n = self.0.node(4);
            let text = std::fs::read_to_string(&n.log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- joiner node 4 log, last 40 lines -----");
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_joins_as_voter_and_voter_is_removed() {
    let mut tc = TestCluster::start("membership", 3, &[], &[]).await;
    let leader = tc.leader().await;
    assert_eq!(
        voters(&tc.status(leader).await),
        vec![1, 2, 3],
        "initial voters"
    );
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["m1", "m2"], "EUR").await;
    write_ok(
        &all,
        0,
        "/v1/deposits",
        &json!({"id": "m-dep", "account": "m1", "amount": 500}),
    )
    .await;

    // LocalCluster::start passes every slot as an initial peer, so node 4 lives in its own
    // LocalCluster: the cluster above was initialized with voters {1,2,3} only.
    let leader_url = tc.lc.node(leader).api_url();
    tc.phase(&format!("starting node 4 with --join {leader_url}"));
    let mut joiner = JoinerGuard(
        LocalCluster::new(&exe(), 4, 0, 0, &tc.path().join("joiner")).expect("joiner slot"),
    );
    joiner
        .0
        .start_joining(4, &leader_url)
        .expect("spawn node 4");
    let n4 = Http::new(&joiner.0.node(4).api_url());
    let http_leader = tc.http(leader);
    // `voters` is the effective membership, which may not be committed yet: also wait until
    // the leader has committed everything it appended (the final membership entry included).
    eventually("node 4 is a voter", JOIN_WAIT, async || {
        let s = http_leader.get("/cluster/status").await.ok()?.body;
        (voters(&s) == vec![1, 2, 3, 4] && s["members"].get("4").is_some()).then_some(())
    })
    .await;
    let appended = tc.status(leader).await["last_log_index"]
        .as_u64()
        .expect("last_log_index");
    eventually(
        "the membership change is committed",
        JOIN_WAIT,
        async || {
            let s = http_leader.get("/cluster/status").await.ok()?.body;
            (s["committed"].as_u64()? >= appended).then_some(())
        },
    )
    .await;
    tc.phase("node 4 is a voter");
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");
    let (_, b4) = balances(
        &n4,
        &["m1", "m2"],
        &format!("&consistency=stale&min_index={committed}"),
    )
    .await;
    assert_eq!(
        (b4["m1"], b4["m2"]),
        (500, 0),
        "node 4 replicated the earlier state"
    );
    let s4 = n4.must_get("/cluster/status").await.body;
    assert!(
        matches!(s4["role"].as_str(), Some("follower") | Some("leader")),
        "node 4 role: {s4}"
    );

    // Send the change to a node other than the leader when possible (exercises the proxy).
    let via = [1u64, 2].into_iter().find(|i| *i != leader).unwrap_or(1);
    tc.phase(&format!("removing node 3 via node {via}"));
    // 503 means "retry shortly" (e.g. a previous change still in flight).
    let hv = tc.http(via);
    let r = eventually("membership change accepted", JOIN_WAIT, async || {
        let r = hv
            .post("/cluster/membership", &json!({"voters": [1, 2, 4]}))
            .await
            .ok()?;
        if r.status == 503 {
            eprintln!("membership change answered 503, retrying: {}", r.text);
            return None;
        }
        Some(r)
    })
    .await;
    assert_eq!(r.status, 200, "membership change: {}", r.text);
    let remaining = [tc.http(1), tc.http(2), n4.clone()];
    let after = eventually(
        "a leader among {1,2,4} reports voters [1,2,4]",
        JOIN_WAIT,
        async || {
            for h in &remaining {
                let s = h.get("/cluster/status").await.ok()?.body;
                if s["role"] == "leader" && voters(&s) == vec![1, 2, 4] {
                    return Some(s);
                }
            }
            None
        },
    )
    .await;
    assert_eq!(voters(&after).len(), 3, "three voters after the removal");
    assert!(
        after["members"].get("3").is_none(),
        "node 3 is no longer a member: {after}"
    );

    tc.phase("writes still work through every remaining node");
    for (i, h) in remaining.iter().enumerate() {
        let body = json!({"id": format!("m-t{i}"), "from": "m1", "to": "m2", "amount": 10});
        write_ok(std::slice::from_ref(h), 0, "/v1/transfers", &body).await;
    }
    let (_, b) = balances(&n4, &["m1", "m2"], "").await;
    assert_eq!((b["m1"], b["m2"]), (470, 30), "linearizable read on node 4");

    let new_leader = after["id"].as_u64().expect("leader id");
    let other = [1u64, 2, 4]
        .into_iter()
        .find(|i| *i != new_leader && *i != 4)
        .expect("a non-leader among 1,2");
    tc.phase(&format!(
        "kill removed node 3 and voter {other}: leader {new_leader} + node 4 must still commit"
    ));
    tc.lc.kill(3);
    tc.lc.kill(other);
    let partner = [1u64, 2]
        .into_iter()
        .find(|i| *i != other)
        .expect("the other of 1,2");
    let live = [tc.http(partner), n4.clone()];
    write_ok(
        &live,
        0,
        "/v1/transfers",
        &json!({"id": "m-quorum", "from": "m1", "to": "m2", "amount": 1}),
    )
    .await;
    let (_, b) = balances(&n4, &["m1", "m2"], "").await;
    assert_eq!(
        (b["m1"], b["m2"]),
        (469, 31),
        "committed with node 4 in the quorum"
    );

    tc.phase(&format!("restart {other}; it catches up"));
    tc.lc.start(other).expect("restart");
    let committed = n4.must_get("/cluster/status").await.body["committed"]
        .as_u64()
        .expect("committed");
    tc.wait_applied(other, committed, CATCH_UP_WAIT).await;
    tc.phase("done");
    tc.assert_no_panics();
    let joiner_panics = log_panics(&joiner.0.node(4).log_path);
    assert!(
        joiner_panics.is_empty(),
        "node 4 panicked: {joiner_panics:?}"
    );
}
