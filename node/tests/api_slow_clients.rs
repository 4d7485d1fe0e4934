//! Slow clients on real node processes: a connection that trickles its headers byte by byte
//! (slowloris) is closed after `--header-read-timeout-ms` on both the client API and the Raft
//! listener, a request body that trickles is answered 408 `body_read_timeout` (API) or cut off
//! (Raft), and other clients are served all the while.

mod common;

use common::TestCluster;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Header and body read timeouts of the test node.
const READ_TIMEOUT_MS: &str = "1000";
/// Pause between two trickled bytes: each byte alone would keep a naive server waiting.
const TRICKLE_PAUSE: Duration = Duration::from_millis(100);
/// Bytes a slow client trickles at most: 12 s of trickling, far past the timeout.
const TRICKLE_BYTES_MAX: usize = 120;

/// Sends `at_once`, then trickles `trickled` and padding one byte at a time; returns how long
/// the server took to close the connection (with what it answered), or None if it was still
/// waiting when the trickle ended.
async fn trickle(addr: &str, at_once: &[u8], trickled: &[u8]) -> Option<(Duration, String)> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    wr.write_all(at_once).await.expect("send the head");
    let mut bytes = trickled.to_vec();
    bytes.extend(std::iter::repeat_n(b'a', TRICKLE_BYTES_MAX));
    for b in bytes {
        if reader.is_finished() || wr.write_all(&[b]).await.is_err() {
            break;
        }
        tokio::time::sleep(TRICKLE_PAUSE).await;
    }
    if !reader.is_finished() {
        return None;
    }
    let got = reader.await.expect("reader");
    Some((
        started.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    ))
}

/// A 1-node cluster with 1 s header and body read timeouts; returns it with its API and Raft
/// `host:port`.
async fn slow_cluster(name: &'static str) -> (TestCluster, String, String) {
    let mut tc = TestCluster::start(
        name,
        1,
        &[],
        &[
            "--header-read-timeout-ms",
            READ_TIMEOUT_MS,
            "--body-read-timeout-ms",
            READ_TIMEOUT_MS,
        ],
    )
    .await;
    let _ = tc.leader().await;
    let node = tc.lc.node(1);
    let api = node.api_url().trim_start_matches("http://").to_owned();
    let raft = node.raft_url().trim_start_matches("http://").to_owned();
    (tc, api, raft)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_on_both_listeners() {
    let (tc, api, raft) = slow_cluster("slowloris").await;
    let h = tc.http(1);
    tc.phase("slowloris headers on the API and the Raft port, normal requests meanwhile");
    let api_headers = tokio::spawn({
        let api = api.clone();
        async move { trickle(&api, b"", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ").await }
    });
    let raft_headers = tokio::spawn(async move {
        trickle(
            &raft,
            b"",
            b"POST /raft/append HTTP/1.1\r\nHost: t\r\nX-Pad: ",
        )
        .await
    });
    for _ in 0..20 {
        let r = h.must_get("/healthz").await;
        assert_eq!(r.status, 200, "served while slow clients wait: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, _) = api_headers
        .await
        .expect("task")
        .expect("API: slowloris connection still open after the trickle");
    tc.phase(&format!(
        "API closed the slowloris connection after {took:?}"
    ));
    let (took, _) = raft_headers
        .await
        .expect("task")
        .expect("Raft: slowloris connection still open after the trickle");
    tc.phase(&format!(
        "Raft closed the slowloris connection after {took:?}"
    ));
    let r = h
        .must_post(
            "/v1/accounts",
            &serde_json::json!({"id": "after-slow", "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_are_cut_off_on_both_listeners() {
    let (tc, api, raft) = slow_cluster("slow-body").await;
    let h = tc.http(1);
    tc.phase("a trickled API body is answered 408 body_read_timeout");
    let head = b"POST /v1/deposits HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                 Content-Length: 4096\r\n\r\n{\"id\":\"slow\",";
    let api_body = tokio::spawn(async move { trickle(&api, head, b"").await });

    tc.phase("a trickled Raft body is cut off");
    // Signed like a peer's request, so the listener gets as far as reading the body.
    let key = node::auth::peer_mac::PeerKey::new(node::config::DEV_CLUSTER_SECRET);
    let signed: String = key
        .sign_request("POST", "/raft/append", &[0u8; 32])
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "POST /raft/append HTTP/1.1\r\nHost: t\r\n{signed}\
         Content-Length: 100000000\r\n\r\n"
    );
    let raft_body = tokio::spawn(async move { trickle(&raft, head.as_bytes(), b"").await });
    for _ in 0..20 {
        let r = h.must_get("/healthz").await;
        assert_eq!(r.status, 200, "served while slow clients send: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, answer) = api_body
        .await
        .expect("task")
        .expect("API: trickled body still being read after the trickle");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "trickled body answer: {answer}"
    );
    assert!(answer.contains("body_read_timeout"), "typed code: {answer}");
    tc.phase(&format!("API answered the trickled body after {took:?}"));
    let (took, answer) = raft_body
        .await
        .expect("task")
        .expect("Raft: trickled body still being read after the trickle");
    assert!(
        !answer.starts_with("HTTP/1.1 2"),
        "a cut-off body is not a success: {answer}"
    );
    tc.phase(&format!("Raft cut off the trickled body after {took:?}"));
    let r = h
        .must_post(
            "/v1/accounts",
            &serde_json::json!({"id": "after-slow-body", "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tc.assert_no_panics();
}
