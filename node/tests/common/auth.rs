//! Helpers of the authentication tests: JSON requests with a bearer token, running a node
//! that must exit, signed Raft requests, an impostor peer and a listener that records what a
//! node sends it.

use super::exe;
use node::auth::peer_mac::{self, PeerKey};
use node::network::server::ReadIndexError;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Longest a node that must refuse to start may take to exit (and one that must start, to
/// serve).
pub const REFUSE_WAIT: Duration = Duration::from_secs(20);

/// POSTs JSON with an optional bearer token; returns (status, body).
pub async fn post(url: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(10))
        .json(body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GETs with an optional bearer token; returns (status, body).
pub async fn get(url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10));
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `error.code` of an error body ("" when absent).
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Runs `raftledger node --id 1` on loopback ports plus `args` until it exits (it must, within
/// [`REFUSE_WAIT`]); returns (success, combined output).
pub fn run_to_exit(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(exe())
        .args(["node", "--id", "1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + REFUSE_WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node with {args:?} did not exit within {REFUSE_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Signs `body` for `route` with `key` and POSTs it to a Raft listener; returns the status and
/// whether the answer carries a reply MAC valid under `key`.
pub async fn raft_post(
    raft_url: &str,
    route: &str,
    key: &PeerKey,
    signed_body: &[u8],
    sent_body: Vec<u8>,
) -> (u16, bool) {
    let sig = key.sign_request("POST", route, &peer_mac::sha256(signed_body));
    let mut r = reqwest::Client::new()
        .post(format!("{raft_url}{route}"))
        .timeout(Duration::from_secs(10))
        .body(sent_body);
    for (name, value) in sig.headers() {
        r = r.header(name, value);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let mac = resp.headers().get(peer_mac::REPLY_MAC_HEADER).cloned();
    let bytes = resp.bytes().await.expect("body");
    let proven = mac.is_some_and(|m| {
        key.verify_reply(&sig.nonce, status, &peer_mac::sha256(&bytes), m.as_bytes())
    });
    (status, proven)
}

/// An HTTP server that answers every request 200 with a well-formed read-index answer, but
/// without a reply MAC (it does not know the secret). Returns its base URL.
pub async fn impostor_server() -> String {
    let body = node::network::wire::encode(&Ok::<u64, ReadIndexError>(5)).expect("encode");
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { body }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A TCP listener that records every byte it receives and never answers. Returns its URL and
/// the captured bytes.
pub async fn capture_listener() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (url, captured)
}
