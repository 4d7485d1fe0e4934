//! Load shedding on real node processes: a write that cannot commit (majority stopped with
//! SIGSTOP) is answered at the server-side deadline with 503 `write_outcome_unknown`, and a
//! retry with the same id after the majority returns is applied once; requests beyond
//! `--api-concurrency-max` are shed with 503 `overloaded` + Retry-After while health and status
//! stay reachable; `/v1/events` subscribers beyond `--events-subscribers-max` get 503, and a
//! stream without `from_seq` starts at the head.

mod common;

use common::{eventually, open_accounts, write_retry, Http, TestCluster, WRITE_WAIT};
use serde_json::json;
use std::time::Duration;

/// Concurrent writes sent while the majority is stopped.
const STALLED_WRITES: usize = 24;
/// `--api-concurrency-max` of the overload cluster: well under [`STALLED_WRITES`].
const API_CONCURRENCY_MAX: usize = 8;
/// Client-side timeout: far above the node's write deadline, so the node must answer first.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// `--events-subscribers-max` of the SSE cluster.
const SUBSCRIBERS_MAX: usize = 4;

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_hit_the_deadline_and_excess_requests_are_shed() {
    let concurrency = API_CONCURRENCY_MAX.to_string();
    let mut tc = TestCluster::start(
        "overload-deadline",
        3,
        &[],
        &[
            "--write-timeout-ms",
            "2000",
            "--api-concurrency-max",
            &concurrency,
            // The leader's lease (election_timeout_max) outlasts sending the stalled writes, so
            // they reach the log and wait for the deadline instead of being refused at once as
            // `no_leader` (a refusal the test tolerates, but not for every write).
            "--election-timeout-ms-min",
            "1500",
            "--election-timeout-ms-max",
            "2500",
        ],
    )
    .await;
    let leader = tc.leader().await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["o-a"], "USD").await;
    let followers: Vec<u64> = tc.ids().into_iter().filter(|i| *i != leader).collect();

    tc.phase(&format!(
        "SIGSTOP followers {followers:?}: no write can commit"
    ));
    for id in &followers {
        signal(tc.lc.node(*id).pid().expect("pid"), "-STOP");
    }
    let lh = Http::with_timeout(&tc.http(leader).base, CLIENT_TIMEOUT);
    let mut tasks = Vec::new();
    for i in 0..STALLED_WRITES {
        let h = lh.clone();
        let body = json!({"id": format!("o-d{i}"), "account": "o-a", "amount": 1});
        tasks.push(tokio::spawn(
            async move { h.post("/v1/deposits", &body).await },
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for route in ["/healthz", "/cluster/status", "/metrics"] {
        let r = lh.must_get(route).await;
        assert_eq!(r.status, 200, "{route} while overloaded: {}", r.text);
    }
    let (mut shed, mut timed_out, mut no_leader) = (0, 0, 0);
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("write {i}: no answer from the node: {e}"));
        assert_eq!(r.status, 503, "write {i}: {}", r.text);
        r.assert_error_shape("stalled write");
        assert!(
            r.header("retry-after").is_some(),
            "write {i}: no Retry-After"
        );
        match r.code() {
            "overloaded" => shed += 1,
            "write_outcome_unknown" => timed_out += 1,
            "no_leader" => no_leader += 1,
            other => panic!("write {i}: unexpected code {other}: {}", r.text),
        }
    }
    tc.phase(&format!(
        "{shed} shed, {timed_out} past the deadline, {no_leader} refused (lease expired)"
    ));
    assert!(
        shed >= STALLED_WRITES - API_CONCURRENCY_MAX,
        "at most {API_CONCURRENCY_MAX} requests in flight, {shed} shed"
    );
    assert!(timed_out >= 1, "some writes reached the deadline");

    tc.phase("SIGCONT: retrying every id is safe and each deposit applies once");
    for id in &followers {
        signal(tc.lc.node(*id).pid().expect("pid"), "-CONT");
    }
    for i in 0..STALLED_WRITES {
        let body = json!({"id": format!("o-d{i}"), "account": "o-a", "amount": 1});
        let (r, n) = write_retry(&all, i, "/v1/deposits", &body, WRITE_WAIT).await;
        let r = r.unwrap_or_else(|| panic!("retry of o-d{i}: no answer after {n} attempts"));
        assert!(r.status == 201 || r.status == 200, "o-d{i}: {}", r.text);
    }
    let b = eventually("balance readable", WRITE_WAIT, async || {
        let r = all[0].get("/v1/accounts/o-a").await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(
        b.body["balance"].as_u64(),
        Some(STALLED_WRITES as u64),
        "each deposit applied exactly once: {}",
        b.text
    );
    tc.assert_no_panics();
}

/// Reads SSE chunks from `resp` until the first `id:` line; returns that id.
async fn first_event_id(resp: &mut reqwest::Response) -> u64 {
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("an event within 10 s")
            .expect("stream chunk")
            .expect("stream still open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("id:")) {
            return line.trim().parse().expect("numeric event id");
        }
    }
}

/// A 1-node cluster with `--events-subscribers-max` [`SUBSCRIBERS_MAX`], account `e-a` open
/// and three deposits made.
async fn sse_cluster(name: &'static str) -> (TestCluster, Http) {
    let max = SUBSCRIBERS_MAX.to_string();
    let mut tc = TestCluster::start(name, 1, &[], &["--events-subscribers-max", &max]).await;
    let _ = tc.leader().await;
    let h = tc.http(1);
    open_accounts(std::slice::from_ref(&h), &["e-a"], "USD").await;
    for i in 0..3 {
        let r = h
            .must_post(
                "/v1/deposits",
                &json!({"id": format!("e-d{i}"), "account": "e-a", "amount": 1}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    (tc, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_without_from_seq_starts_at_the_head() {
    let (tc, h) = sse_cluster("sse-head").await;
    let head = h.must_get("/cluster/status").await.body["last_event_seq"]
        .as_u64()
        .expect("last_event_seq");
    tc.phase(&format!(
        "subscribe without from_seq at head {head}, then write"
    ));
    let mut tail = reqwest::Client::new()
        .get(format!("{}/v1/events", h.base))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(tail.status(), 200);
    let r = h
        .must_post(
            "/v1/deposits",
            &json!({"id": "e-next", "account": "e-a", "amount": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = first_event_id(&mut tail).await;
    assert_eq!(first, head + 1, "default start is the head, not seq 1");
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_subscribers_beyond_the_cap_get_503() {
    let (tc, h) = sse_cluster("sse-cap").await;
    tc.phase(&format!("{SUBSCRIBERS_MAX} idle subscribers fill the cap"));
    let sse = reqwest::Client::new();
    let url = format!("{}/v1/events?from_seq=1", h.base);
    let mut held = Vec::new();
    while held.len() < SUBSCRIBERS_MAX {
        let r = sse.get(&url).send().await.expect("subscribe");
        assert_eq!(r.status(), 200, "subscriber {} under the cap", held.len());
        held.push(r);
    }
    for _ in 0..3 {
        let r = h.must_get("/v1/events?from_seq=1").await;
        r.expect_error("subscriber over the cap", 503, "too_many_subscribers");
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    }
    let a = h.must_get("/v1/accounts/e-a").await;
    assert_eq!(a.status, 200, "normal reads still served: {}", a.text);

    tc.phase("a closed subscription frees its slot");
    drop(held.pop());
    eventually(
        "a slot is free again",
        Duration::from_secs(40),
        async || {
            let r = sse.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    tc.assert_no_panics();
}
