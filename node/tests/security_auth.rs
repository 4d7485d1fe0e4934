//! Authentication on real node processes: operators (admin token, admin keys), clients (API
//! keys with scopes), peers (HMAC-signed Raft RPC both ways; the cluster secret never leaves a
//! node), the "insecure only on purpose" start-up rule, member URL validation and the `Host`
//! check.

mod common;

use common::auth::{
    capture_listener, code, get, impostor_server, post, raft_post, run_to_exit, REFUSE_WAIT,
};
use common::{eventually, exe, Http, TestCluster};
use node::auth::peer_mac::{self, PeerKey};
use node::local_cluster::{free_port, LocalCluster};
use node::network::server::ReadIndexError;
use node::network::wire::path;
use node::network::NetworkFactory;
use node::raft_types::NodeAddr;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Admin token of the test clusters (long enough for a public bind).
const TOKEN: &str = "admin-token-0123456789abcdef";
/// A cluster secret no other process knows; searched for in captured traffic.
const SECRET: &str = "cluster-secret-SENTINEL-5f1c9e";
/// How long a refused peer is watched for (many heartbeat and replication rounds).
const REFUSED_PEER_WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token_and_member_urls_and_hosts_are_checked() {
    let tc = TestCluster::start(
        "sec-admin",
        1,
        &[],
        &[
            "--admin-token",
            TOKEN,
            "--peer-allow",
            "127.0.0.1",
            "--allowed-hosts",
            "127.0.0.1,localhost",
        ],
    )
    .await;
    let api = tc.lc.node(1).api_url();
    let voters = json!({"voters": [1]});

    tc.phase("/cluster mutations without the token, or with a wrong one, are 401");
    for route in [
        "/cluster/membership",
        "/cluster/learners",
        "/cluster/init",
        "/cluster/leader/transfer",
        "/cluster/snapshot",
    ] {
        for bearer in [None, Some("wrong-token-wrong-token-123")] {
            let (status, body) = post(&format!("{api}{route}"), bearer, &voters).await;
            assert_eq!(status, 401, "{route} with {bearer:?}: {body}");
            assert_eq!(code(&body), "unauthenticated", "{route}: {body}");
        }
    }
    let (status, body) = post(&format!("{api}/cluster/membership"), Some(TOKEN), &voters).await;
    assert_eq!(status, 200, "with the token: {body}");
    let (status, _) = get(&format!("{api}/cluster/status"), None).await;
    assert_eq!(status, 200, "status stays open");

    tc.phase("learner URLs are validated: scheme, host, no userinfo/query, allow-list");
    for (api_url, raft_url) in [
        ("ftp://127.0.0.1:1", "http://127.0.0.1:2"),
        ("http://127.0.0.1:1", "file:///etc/passwd"),
        ("http://user:pw@127.0.0.1:1", "http://127.0.0.1:2"),
        ("http://127.0.0.1:1", "http://127.0.0.1:2/?x=1"),
        ("http://127.0.0.1:1", "http://10.9.8.7:9080"),
        ("http://127.0.0.1:1", "not a url"),
    ] {
        let body = json!({"id": 9, "api": api_url, "raft": raft_url});
        let (status, resp) = post(&format!("{api}/cluster/learners"), Some(TOKEN), &body).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(code(&resp), "invalid_member_url", "{body}: {resp}");
    }
    let (_, after) = get(&format!("{api}/cluster/status"), None).await;
    assert!(
        after["members"].get("9").is_none(),
        "nothing was added: {after}"
    );

    tc.phase("a Host that is not one of the node's names is 400 bad_host");
    let resp = reqwest::Client::new()
        .get(format!("{api}/v1/accounts/a"))
        .header("host", "attacker.example")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(code(&body), "bad_host", "{body}");
    let resp = reqwest::Client::new()
        .get(format!("{api}/v1/accounts/a"))
        .header("host", "localhost:1234")
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status().as_u16(),
        404,
        "an allowed name passes (unknown account)"
    );
    let (status, _) = get(&format!("{api}/v1/accounts/a"), None).await;
    assert_eq!(status, 404, "127.0.0.1:port passes");
    tc.assert_no_panics();
}

/// Runs `raftledger apikey` and returns (key, line).
fn make_key(name: &str, scope: &str) -> (String, String) {
    let out = Command::new(exe())
        .args(["apikey", "--name", name, "--scope", scope])
        .output()
        .expect("run raftledger apikey");
    assert!(
        out.status.success(),
        "apikey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .trim()
            .to_owned()
    };
    (field("key:"), field("line:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_gate_the_client_api_by_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, l1) = make_key("reporting", "read");
    let (writer, l2) = make_key("payments", "write");
    let (admin, l3) = make_key("ops", "admin");
    assert!(
        !l2.contains(&writer),
        "the stored line holds a hash, not the key"
    );
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# client keys\n{l1}\n{l2}\n{l3}\n")).expect("write keys");

    malformed_keys_file_refuses_start(dir.path());

    let keys_arg = keys.to_str().expect("utf8 path");
    let tc = TestCluster::start("sec-keys", 1, &[], &["--api-keys-file", keys_arg]).await;
    let api = tc.lc.node(1).api_url();
    let account = json!({"id": "k-acct", "currency": "EUR"});

    tc.phase("no key or an unknown key: 401; a read key cannot POST: 403");
    let (status, body) = get(&format!("{api}/v1/accounts/k-acct"), None).await;
    assert_eq!((status, code(&body)), (401, "unauthenticated"), "{body}");
    let (status, body) = post(
        &format!("{api}/v1/accounts"),
        Some("rlk_not-a-key"),
        &account,
    )
    .await;
    assert_eq!((status, code(&body)), (401, "unauthenticated"), "{body}");
    let (status, body) = post(&format!("{api}/v1/accounts"), Some(&reader), &account).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = get(&format!("{api}/v1/accounts/k-acct"), Some(&reader)).await;
    assert_eq!(status, 404, "nothing was opened: {body}");

    tc.phase("a write key can POST, a read key can GET");
    let (status, body) = post(&format!("{api}/v1/accounts"), Some(&writer), &account).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = get(&format!("{api}/v1/accounts/k-acct"), Some(&reader)).await;
    assert_eq!(status, 200, "{body}");

    tc.phase("/cluster mutations need an admin key; health and metrics stay open");
    let voters = json!({"voters": [1]});
    let (status, body) = post(&format!("{api}/cluster/membership"), Some(&writer), &voters).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = post(&format!("{api}/cluster/membership"), Some(&admin), &voters).await;
    assert_eq!(status, 200, "{body}");
    for open in ["/healthz", "/readyz", "/metrics", "/cluster/status"] {
        let r = reqwest::get(format!("{api}{open}")).await.expect("request");
        assert_eq!(r.status().as_u16(), 200, "{open} is open");
    }
    let log = std::fs::read_to_string(&tc.lc.node(1).log_path).expect("node log");
    assert!(log.contains("payments"), "a refused key is logged by name");
    for key in [&reader, &writer, &admin] {
        assert!(
            !log.contains(key.as_str()),
            "a key never appears in the log"
        );
    }
    tc.assert_no_panics();
}

/// A keys file with a bad line makes the node exit with the line number.
fn malformed_keys_file_refuses_start(dir: &std::path::Path) {
    let bad = dir.join("bad-keys");
    std::fs::write(
        &bad,
        format!(
            "ok read {}\nbroken sudo {}\n",
            "ab".repeat(32),
            "cd".repeat(32)
        ),
    )
    .expect("write");
    let (ok, stderr) = run_to_exit(&[
        "--api-keys-file",
        bad.to_str().expect("utf8"),
        "--data",
        dir.join("bad-data").to_str().expect("utf8"),
    ]);
    assert!(!ok, "a malformed keys file refuses start");
    assert!(
        stderr.contains("line 2") && stderr.contains("scope"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_bind_refuses_to_start_without_token_and_secret_unless_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf8");
    let raft = format!("127.0.0.1:{}", free_port().expect("port"));

    let (ok, out) = run_to_exit(&["--api", "0.0.0.0:0", "--raft", &raft, "--data", data]);
    assert!(!ok, "must not start: {out}");
    for needle in [
        "refusing to start",
        "--api 0.0.0.0:0",
        "--admin-token is not set",
        "--cluster-secret is the well-known",
        "--insecure",
    ] {
        assert!(out.contains(needle), "message names {needle:?}: {out}");
    }
    let (ok, out) = run_to_exit(&[
        "--api",
        "127.0.0.1:0",
        "--raft",
        "[::]:0",
        "--data",
        data,
        "--admin-token",
        "short",
        "--cluster-secret",
        "also-short",
    ]);
    assert!(!ok, "short token and secret refused: {out}");
    assert!(
        out.contains("--raft [::]:0") && out.contains("shorter than 16 bytes"),
        "{out}"
    );

    for extra in [
        &["--insecure"][..],
        &["--admin-token", TOKEN, "--cluster-secret", SECRET][..],
    ] {
        let port = free_port().expect("port");
        let raft = format!("127.0.0.1:{}", free_port().expect("port"));
        let log = dir.path().join(format!("node-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(exe())
            .args([
                "node",
                "--id",
                "1",
                "--api",
                &format!("0.0.0.0:{port}"),
                "--raft",
                &raft,
                "--data",
                data,
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("spawn");
        let health = Http::new(&format!("http://127.0.0.1:{port}"));
        let up = eventually("node on 0.0.0.0 serves /healthz", REFUSE_WAIT, async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "node with {extra:?} exited: {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            health
                .get("/healthz")
                .await
                .ok()
                .filter(|r| r.status == 200)
        })
        .await;
        assert_eq!(up.status, 200);
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&log).expect("log");
        assert_eq!(
            text.contains("node.insecure"),
            extra == ["--insecure"],
            "--insecure (and only it) warns what is open: {text}"
        );
        assert!(
            !text.contains(SECRET) && !text.contains(TOKEN),
            "secrets are never logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_rpc_is_authenticated_both_ways() {
    let tc = TestCluster::start("sec-peers", 1, &[], &["--cluster-secret", SECRET]).await;
    let raft_url = tc.lc.node(1).raft_url();
    let api = tc.lc.node(1).api_url();
    let read_index =
        node::network::wire::encode(&node::network::server::ReadIndexRequest { lease: false })
            .expect("encode");

    tc.phase("wrong secret, unsigned or altered body: 401; the right secret: a signed answer");
    let right = PeerKey::new(SECRET);
    let wrong = PeerKey::new("some-other-cluster-secret");
    let (status, _) = raft_post(
        &raft_url,
        path::READ_INDEX,
        &wrong,
        &read_index,
        read_index.clone(),
    )
    .await;
    assert_eq!(status, 401, "wrong secret");
    let unsigned = reqwest::Client::new()
        .post(format!("{raft_url}{}", path::READ_INDEX))
        .header("x-raftledger-secret", SECRET)
        .body(read_index.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(
        unsigned.status().as_u16(),
        401,
        "the old secret header is no credential"
    );
    let (status, _) = raft_post(
        &raft_url,
        path::READ_INDEX,
        &right,
        b"signed other bytes",
        read_index.clone(),
    )
    .await;
    assert_eq!(status, 401, "body altered after signing");
    let (status, proven) = raft_post(
        &raft_url,
        path::READ_INDEX,
        &right,
        &read_index,
        read_index.clone(),
    )
    .await;
    assert_eq!(
        (status, proven),
        (200, true),
        "a signed request gets a signed answer"
    );
    let (_, proven) = raft_post(
        &raft_url,
        path::READ_INDEX,
        &wrong,
        &read_index,
        read_index.clone(),
    )
    .await;
    assert!(!proven, "a 401 proves nothing");

    tc.phase("the node's own client trusts only answers signed with the secret");
    let r = read_index_via(1, &api, &raft_url).await;
    assert!(matches!(r, Ok(Ok(_))), "real peer answers: {r:?}");
    let impostor = impostor_server().await;
    let r = read_index_via(2, &impostor, &impostor).await;
    let err = r.expect_err("an unsigned 200 is not trusted");
    assert!(err.to_string().contains("reply MAC"), "{err}");

    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_never_sent_and_a_wrong_secret_node_never_joins() {
    let tc = TestCluster::start("sec-join", 1, &[], &["--cluster-secret", SECRET]).await;
    let api = tc.lc.node(1).api_url();

    tc.phase("a learner at a listener we control receives signed requests, never the secret");
    let (url, captured) = capture_listener().await;
    let add = tokio::spawn({
        let api = api.clone();
        let url = url.clone();
        async move {
            let body = json!({"id": 7, "api": url, "raft": url});
            let _ = reqwest::Client::new()
                .post(format!("{api}/cluster/learners"))
                .timeout(REFUSED_PEER_WATCH)
                .json(&body)
                .send()
                .await;
        }
    });
    let seen = eventually(
        "the leader sends AppendEntries to the fake learner",
        Duration::from_secs(20),
        async || {
            let bytes = captured.lock().expect("lock").clone();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            text.contains(path::APPEND).then_some(text)
        },
    )
    .await;
    let _ = add.await;
    let all = String::from_utf8_lossy(&captured.lock().expect("lock")).into_owned();
    assert!(
        seen.to_ascii_lowercase().contains(peer_mac::MAC_HEADER),
        "requests are signed: {seen}"
    );
    assert!(
        !all.contains(SECRET),
        "the cluster secret was sent to the learner"
    );
    assert!(
        !all.contains("x-raftledger-secret"),
        "no secret header at all"
    );

    tc.phase("a node with the wrong secret never joins or receives entries");
    let mut joiner = LocalCluster::new(&exe(), 2, 0, 0, &tc.path().join("joiner"))
        .expect("joiner slot")
        .with_args(&["--cluster-secret", "wrong-secret-wrong-secret"]);
    joiner.start_joining(2, &api).expect("spawn joiner");
    let joiner_http = Http::new(&joiner.node(2).api_url());
    eventually(
        "joiner serves /healthz",
        Duration::from_secs(20),
        async || {
            joiner_http
                .get("/healthz")
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await;
    tokio::time::sleep(REFUSED_PEER_WATCH).await;
    let s = joiner_http.must_get("/cluster/status").await.body;
    assert_eq!(
        s["last_log_index"].as_u64(),
        Some(0),
        "joiner received no entries: {s}"
    );
    assert!(
        s["voters"].as_array().is_none_or(|v| v.is_empty()),
        "joiner is in no cluster: {s}"
    );
    let (_, leader) = get(&format!("{api}/cluster/status"), None).await;
    assert_eq!(
        leader["voters"],
        json!([1]),
        "the joiner is no voter: {leader}"
    );
    assert_eq!(
        leader["replication"]["2"]["matched"],
        json!(0),
        "nothing was replicated to the joiner: {leader}"
    );
    assert!(
        joiner_log_has_refusals(&joiner),
        "the joiner logged the refusals"
    );
    tc.assert_no_panics();
}

fn joiner_log_has_refusals(joiner: &LocalCluster) -> bool {
    std::fs::read_to_string(&joiner.node(2).log_path)
        .expect("joiner log")
        .contains("raft rpc refused")
}

/// A read-index call from a node knowing [`SECRET`] to the member at `api`/`raft`.
async fn read_index_via(
    target: u64,
    api: &str,
    raft: &str,
) -> Result<Result<u64, ReadIndexError>, node::network::client::CallError> {
    let member = NodeAddr {
        api: api.to_owned(),
        raft: raft.to_owned(),
    };
    NetworkFactory::new(99, SECRET)
        .connection(target, &member)
        .call(
            path::READ_INDEX,
            &node::network::server::ReadIndexRequest { lease: false },
            Duration::from_secs(5),
        )
        .await
}
