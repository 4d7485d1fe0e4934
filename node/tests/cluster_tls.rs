//! TLS on real node processes: a cluster whose API serves TLS and whose Raft port serves
//! mutual TLS elects a leader, accepts writes on the leader and through a follower
//! (forwarded over mTLS), serves linearizable reads from a follower (read-index over mTLS)
//! and fails over; and every listener refuses what it must: plain HTTP on the TLS API, Raft
//! clients without a certificate or with one from another CA, replication to a node whose
//! certificate another CA signed, and a handshake that never completes (closed after the
//! header read timeout while other clients are served). Also: `raftledger certs` and the
//! `--tls-*` flag errors, and the read model's HTTPS listener (real nats-server and
//! PostgreSQL).

mod common;

use common::{account, exe, open_accounts, write_ok, Http, TestCluster};
use netserve::generate::{ca_path, node_cert_path, node_key_path, CertsRequest};
use node::local_cluster::free_port;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

/// Header read timeout of the refusal test's cluster (also bounds TLS handshakes).
const HEADER_READ_TIMEOUT_MS: u64 = 1_000;
/// How long a refused node is watched for replication it must never get.
const ROGUE_WATCH: Duration = Duration::from_secs(3);

/// A reqwest client over `tls` with the test timeout.
fn client_with(tls: netserve::rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// A second, unrelated CA with a certificate for node `id` (in `dir`).
fn foreign_ca(dir: &Path, id: u64) -> std::path::PathBuf {
    let out = dir.join("foreign-ca");
    netserve::generate::generate(&CertsRequest {
        out: out.clone(),
        nodes: vec![id],
        hosts: Vec::new(),
        force: false,
    })
    .expect("foreign CA");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_writes_forwards_reads_and_fails_over() {
    let mut tc = TestCluster::start_tls("tls-cluster", 3, &[], &[]).await;
    for id in tc.ids() {
        assert!(
            tc.lc.node(id).api_url().starts_with("https://"),
            "TLS cluster URLs are https"
        );
    }
    let leader = tc.leader().await;
    let follower = tc
        .ids()
        .into_iter()
        .find(|i| *i != leader)
        .expect("follower");
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["tls-a", "tls-b"], "USD").await;

    tc.phase(&format!(
        "write on leader {leader}, then through follower {follower}"
    ));
    let lead = tc.http(leader);
    let r = lead
        .must_post(
            "/v1/deposits",
            &json!({"id": "tls-d1", "account": "tls-a", "amount": 500}),
        )
        .await;
    assert_eq!(r.status, 201, "deposit on the leader: {}", r.text);
    let fol = tc.http(follower);
    let r = fol
        .must_post(
            "/v1/transfers",
            &json!({"id": "tls-t1", "from": "tls-a", "to": "tls-b", "amount": 200}),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "transfer forwarded by a follower: {}",
        r.text
    );

    tc.phase("linearizable read on the follower (read-index over mutual TLS)");
    let r = account(&fol, "tls-b", "").await;
    assert_eq!(r.body["balance"], 200, "{}", r.text);

    tc.phase(&format!("kill leader {leader}; a new leader takes writes"));
    tc.lc.kill(leader);
    let new_leader = tc.leader().await;
    assert_ne!(new_leader, leader);
    let running = tc.running();
    let live: Vec<Http> = tc.https(&running);
    let r = write_ok(
        &live,
        0,
        "/v1/transfers",
        &json!({"id": "tls-t2", "from": "tls-a", "to": "tls-b", "amount": 100}),
    )
    .await;
    assert!(r.ok(), "{}", r.text);
    for h in &live {
        let r = account(h, "tls-b", "").await;
        assert_eq!(r.body["balance"], 300, "{}: {}", h.base, r.text);
    }
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_refuse_plain_http_wrong_certificates_and_stalled_handshakes() {
    let timeout_flag = HEADER_READ_TIMEOUT_MS.to_string();
    let mut tc = TestCluster::start_tls(
        "tls-refusals",
        3,
        &[],
        &["--header-read-timeout-ms", &timeout_flag],
    )
    .await;
    let leader = tc.leader().await;
    let certs = tc.lc.certs_dir().expect("TLS cluster").to_owned();
    let ca = ca_path(&certs);
    let node = tc.lc.node(leader);
    let (api_port, raft_port, raft_url) = (node.api_port, node.raft_port, node.raft_url());

    tc.phase("plain http:// to the TLS API port fails");
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .get(format!("http://127.0.0.1:{api_port}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP must not be served: {r:?}");

    tc.phase("Raft port: a cluster certificate gets an HTTP answer (control)");
    let member = netserve::Identity {
        cert: &node_cert_path(&certs, leader),
        key: &node_key_path(&certs, leader),
    };
    let ok = client_with(netserve::client_config(&ca, Some(member)).expect("config"));
    let r = ok
        .post(format!("{raft_url}/raft/vote"))
        .send()
        .await
        .expect("a member certificate completes the handshake");
    assert!(
        r.status().is_client_error(),
        "no secret, no body: refused by HTTP, not TLS: {}",
        r.status()
    );

    tc.phase("Raft port: no client certificate, or one from another CA, is refused");
    let anonymous = client_with(netserve::client_config(&ca, None).expect("config"));
    let r = anonymous.post(format!("{raft_url}/raft/vote")).send().await;
    assert!(r.is_err(), "Raft port without a client certificate: {r:?}");
    let foreign = foreign_ca(tc.path(), 4);
    let stranger = netserve::Identity {
        cert: &node_cert_path(&foreign, 4),
        key: &node_key_path(&foreign, 4),
    };
    let wrong = client_with(netserve::client_config(&ca, Some(stranger)).expect("config"));
    let r = wrong.post(format!("{raft_url}/raft/vote")).send().await;
    assert!(r.is_err(), "Raft port with a foreign-CA certificate: {r:?}");

    tc.phase("stalled handshakes are closed after the header read timeout; others are served");
    let started = Instant::now();
    let mut stalled_api = tokio::net::TcpStream::connect(("127.0.0.1", api_port))
        .await
        .expect("connect api");
    let mut stalled_raft = tokio::net::TcpStream::connect(("127.0.0.1", raft_port))
        .await
        .expect("connect raft");
    let r = tc.http(leader).must_get("/cluster/status").await;
    assert_eq!(r.status, 200, "served while another connection stalls");
    for (what, s) in [("api", &mut stalled_api), ("raft", &mut stalled_raft)] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(
            Duration::from_millis(5 * HEADER_READ_TIMEOUT_MS),
            s.read(&mut buf),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{what}: a never-finished handshake must be closed: {read:?}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(HEADER_READ_TIMEOUT_MS / 2),
        "closed after the timeout, not at once: {waited:?}"
    );

    tc.phase("a node with a foreign-CA certificate cannot join or be replicated to");
    let mut rogue = RogueNode::spawn(tc.path(), &foreign, &ca, &tc.lc.node(leader).api_url());
    let rogue_http = Http::with_client(
        &rogue.api_url,
        client_with(netserve::client_config(&ca_path(&foreign), None).expect("config")),
    );
    let deadline = Instant::now() + ROGUE_WATCH;
    let mut answered = false;
    while Instant::now() < deadline {
        assert!(rogue.running(), "rogue node exited: see {}", rogue.log);
        if let Ok(r) = rogue_http.get("/cluster/status").await {
            answered = true;
            let applied = r.body["applied"].as_u64().unwrap_or(0);
            assert_eq!(applied, 0, "the rogue node was replicated to: {}", r.text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered, "the rogue node's own API never answered");
    // Membership admission is the admin API's business (operator token); TLS guarantees that
    // even an admitted node with the wrong CA never gets a byte of the log, and the others
    // keep committing.
    let r = write_ok(
        &tc.https(&[leader]),
        0,
        "/v1/accounts",
        &json!({"id": "after-rogue", "currency": "USD"}),
    )
    .await;
    assert!(r.ok(), "{}", r.text);
    let r = rogue_http.must_get("/cluster/status").await;
    assert_eq!(
        r.body["applied"].as_u64().unwrap_or(0),
        0,
        "the rogue node was replicated to: {}",
        r.text
    );
    tc.assert_no_panics();
}

/// A node process presenting a certificate from a CA the cluster does not trust; killed on
/// drop.
struct RogueNode {
    child: Child,
    api_url: String,
    log: String,
}

impl RogueNode {
    fn spawn(dir: &Path, foreign: &Path, cluster_ca: &Path, join: &str) -> Self {
        let api_port = free_port().expect("port");
        let raft_port = free_port().expect("port");
        let data = dir.join("rogue-node");
        let log_path = dir.join("rogue-node.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let child = Command::new(exe())
            .arg("node")
            .args(["--id", "4"])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .args(["--raft", &format!("127.0.0.1:{raft_port}")])
            .arg("--data")
            .arg(&data)
            .args(["--join", join])
            .arg("--tls-cert")
            .arg(node_cert_path(foreign, 4))
            .arg("--tls-key")
            .arg(node_key_path(foreign, 4))
            .arg("--tls-ca")
            .arg(cluster_ca)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn rogue node");
        Self {
            child,
            api_url: format!("https://127.0.0.1:{api_port}"),
            log: log_path.display().to_string(),
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RogueNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `raftledger` binary with `args`; (success, stdout + stderr).
fn run_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(exe())
        .args(args)
        .output()
        .expect("run raftledger");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn certs_command_and_tls_flags_fail_loudly_on_bad_input() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("certs");
    let out_s = out.display().to_string();
    let certs = ["certs", "--out", &out_s, "--node", "1", "--node", "2"];
    let (ok, text) = run_cli(&[&certs[..], &["--host", "ledger.example"]].concat());
    assert!(ok, "raftledger certs: {text}");
    for f in [
        "ca.pem",
        "node1.pem",
        "node2-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        assert!(out.join(f).exists(), "{f} missing: {text}");
    }
    let mode = std::fs::metadata(out.join("ca-key.pem"))
        .expect("ca key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private keys are 0600");
    let (ok, text) = run_cli(&certs);
    assert!(
        !ok && text.contains("--force"),
        "a second run must refuse: {text}"
    );

    let data = dir.path().join("data").display().to_string();
    let ca = out.join("ca.pem").display().to_string();
    let key = out.join("node1-key.pem").display().to_string();
    let bad = dir.path().join("garbage.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let bad = bad.display().to_string();
    let node = [
        "node",
        "--id",
        "1",
        "--api",
        "127.0.0.1:0",
        "--raft",
        "127.0.0.1:1",
    ];
    let tls = ["--data", &data, "--tls-key", &key, "--tls-ca", &ca];
    let (ok, text) = run_cli(&[&node[..], &tls, &["--tls-cert", &bad]].concat());
    assert!(
        !ok && text.contains("garbage.pem"),
        "bad file is named: {text}"
    );
    let (ok, text) = run_cli(&[&node[..], &["--data", &data, "--tls-ca", &ca]].concat());
    assert!(
        !ok && text.contains("go together"),
        "partial TLS flags: {text}"
    );
    let cert = out.join("node1.pem").display().to_string();
    let peers = "1=http://127.0.0.1:1|http://127.0.0.1:2";
    let (ok, text) = run_cli(&[&node[..], &tls, &["--tls-cert", &cert, "--peers", peers]].concat());
    assert!(
        !ok && text.contains("https://"),
        "http:// peer with TLS on: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_serves_https_with_the_given_certificate() {
    use readmodel::local::{nats::create_ledger_stream, nats::LocalNats, postgres::LocalPostgres};
    let dir = tempfile::Builder::new()
        .prefix("readmodel-tls-")
        .tempdir()
        .expect("tempdir");
    let nats = LocalNats::start(&dir.path().join("nats")).expect("nats-server (install step)");
    let pg = LocalPostgres::start(&dir.path().join("pg")).expect("postgres (install step)");
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("nats"));
    create_ledger_stream(&js).await.expect("stream");
    let certs = dir.path().join("certs");
    netserve::generate::generate(&CertsRequest {
        out: certs.clone(),
        nodes: vec![1],
        hosts: Vec::new(),
        force: false,
    })
    .expect("certs");
    let rm = readmodel::start(readmodel::config::ReadModelConfig {
        listen: "127.0.0.1:0".into(),
        nats_url: nats.url(),
        postgres_url: pg.url(),
        query_connections_max: 2,
        header_read_timeout_ms: 1_000,
        tls: readmodel::tls::ServerTlsArgs {
            tls_cert: Some(node_cert_path(&certs, 1)),
            tls_key: Some(node_key_path(&certs, 1)),
        },
        access: Default::default(),
    })
    .await
    .expect("start read model with TLS");
    assert!(rm.url().starts_with("https://"), "{}", rm.url());
    // Same accept loop as the nodes: a stalled handshake is closed after the header read
    // timeout (1 s here) while other clients are served.
    let started = Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(rm.addr)
        .await
        .expect("connect read model");
    let client = client_with(netserve::client_config(&ca_path(&certs), None).expect("config"));
    let r = client
        .get(format!("{}/healthz", rm.url()))
        .send()
        .await
        .expect("https request to the read model");
    assert_eq!(r.status(), 200);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "read model: a never-finished handshake must be closed: {read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed after the timeout, not at once: {:?}",
        started.elapsed()
    );
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .get(format!("http://{}/healthz", rm.addr))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP must not be served: {r:?}");
    let other = foreign_ca(dir.path(), 1);
    let stranger = client_with(netserve::client_config(&ca_path(&other), None).expect("config"));
    let r = stranger.get(format!("{}/healthz", rm.url())).send().await;
    assert!(
        r.is_err(),
        "a client trusting another CA rejects the server: {r:?}"
    );
}
