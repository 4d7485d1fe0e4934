//! Least privilege on the read side, with the shipped deploy files and real servers:
//! - the read model's `/admin/*` routes need the bearer token (401 JSON without or with a wrong
//!   one) and the binary refuses a non-loopback listener without one;
//! - `deploy/nats.conf`: anonymous clients are refused, the read model's user cannot publish
//!   `ledger.events.*`, the node's user creates stream `LEDGER` and publishes, and the read
//!   model consumes as its user;
//! - `deploy/postgres/init.sql`: the projector runs as `raftledger_projector`, queries as
//!   `raftledger_reader`, which can read every projection but write or create nothing;
//! - TLS to PostgreSQL (`sslmode=require`, `--pg-tls-ca`) and NATS (`--nats-tls-ca`) is
//!   verified against the given CA (another CA is refused) and used by every read-model
//!   connection;
//! - `docker-compose.yml` validates with every secret supplied and names each missing one.

use async_nats::jetstream;
use readmodel::access::{AccessArgs, NatsAccess};
use readmodel::local::deploy_nats::{DeployNats, NODE_PASSWORD, READMODEL_PASSWORD};
use readmodel::local::{nats, postgres::LocalPostgres};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "admin-token-for-tests";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn user(name: &str, password: &str) -> NatsAccess {
    NatsAccess {
        user: Some(name.into()),
        password: Some(password.into()),
        ..Default::default()
    }
}

/// Creates the two roles exactly as the compose stack does: `psql -f deploy/postgres/init.sql`.
fn create_roles(pg: &LocalPostgres) {
    let psql = readmodel::local::postgres::bindir().unwrap().join("psql");
    let out = Command::new(psql)
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", "projector_password=pp", "-v", "reader_password=rp"])
        .arg("-f")
        .arg(repo_root().join("deploy/postgres/init.sql"))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "init.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_url(pg: &LocalPostgres, role: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={role} dbname=postgres",
        pg.port
    )
}

async fn admin_get(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn opened(seq: u64, account: &str) -> Vec<u8> {
    let ts = readmodel::event::format_ts_us(1_795_392_000_000_000);
    json!({"seq": seq, "index": seq, "timestamp": ts, "type": "account_opened", "schema_version": 1,
           "command_id": format!("c{seq}"), "data": {"account": account, "currency": "USD", "overdraft_limit": 0, "metadata": "{}"}})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_nats_users_pg_roles_and_admin_token_hold() {
    let dir = tempfile::tempdir().unwrap();
    let nats =
        DeployNats::start(&dir.path().join("nats"), None).expect("nats-server (install step)");
    let pg = LocalPostgres::start(&dir.path().join("pg")).expect("postgres (install step)");
    create_roles(&pg);

    // Anonymous: refused at connect.
    let anon = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(nats.url())
        .await;
    assert!(anon.is_err(), "anonymous NATS connect must be refused");

    // The node's user creates the stream and publishes an event.
    let node = user("raftledger_node", NODE_PASSWORD);
    let node_js = jetstream::new(
        node.options()
            .await
            .unwrap()
            .connect(nats.url())
            .await
            .unwrap(),
    );
    nats::create_ledger_stream(&node_js)
        .await
        .expect("node user creates LEDGER");
    node_js
        .publish("ledger.events.account_opened", opened(1, "alice").into())
        .await
        .unwrap()
        .await
        .expect("node user's publish acked");

    // The read model's user may not publish events: the server reports a permission violation.
    let (tx, mut violations) = tokio::sync::mpsc::unbounded_channel::<String>();
    let rm_user = user("raftledger_readmodel", READMODEL_PASSWORD);
    let forger = rm_user
        .options()
        .await
        .unwrap()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(nats.url())
        .await
        .expect("read model user connects");
    forger
        .publish("ledger.events.x", "forged".into())
        .await
        .unwrap();
    forger.flush().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = violations.recv().await.expect("events");
            if e.to_lowercase().contains("permissions violation") {
                return e;
            }
        }
    })
    .await
    .expect("a permissions violation for the read model user's publish");
    assert!(seen.contains("ledger.events.x"), "{seen}");

    // The read model: projector as raftledger_projector, queries as raftledger_reader, NATS as
    // raftledger_readmodel, admin routes behind the token.
    let rm = readmodel::start(readmodel::config::ReadModelConfig {
        listen: "127.0.0.1:0".into(),
        nats_url: nats.url(),
        postgres_url: pg_url(&pg, "raftledger_projector"),
        query_connections_max: 2,
        header_read_timeout_ms: readmodel::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
        tls: Default::default(),
        access: AccessArgs {
            admin_token: Some(ADMIN_TOKEN.into()),
            nats_user: Some("raftledger_readmodel".into()),
            nats_password: Some(READMODEL_PASSWORD.into()),
            pg_read_url: Some(pg_url(&pg, "raftledger_reader")),
            ..Default::default()
        },
    })
    .await
    .expect("start read model");
    let base = rm.url();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = admin_get(&base, "/v1/accounts/alice", None).await;
        if status == 200 {
            assert_eq!(body["id"], "alice", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "event not projected: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Admin routes: 401 without or with a wrong token (any admin path), 200 with it.
    for path in ["/admin/projections", "/admin/parked", "/admin/nope"] {
        for token in [None, Some("wrong")] {
            let (status, body) = admin_get(&base, path, token).await;
            assert_eq!(status, 401, "{path} {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
    }
    let rebuild = reqwest::Client::new()
        .post(format!("{base}/admin/projections/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebuild.status().as_u16(), 401);
    let (status, body) = admin_get(&base, "/admin/projections", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"]["checkpoint"], 1, "{body}");
    // The lag probe reads the stream with the read model's NATS permissions too.
    assert_eq!(body["stream"]["head"], 1, "{body}");
    let (status, body) = admin_get(&base, "/admin/parked", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");

    // The reader role, even with read-only transactions switched off, writes nothing.
    let reader = readmodel::access::PgAccess::default();
    let (c, conn) = reader
        .connect(&pg_url(&pg, "raftledger_reader"))
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM rm_1.balances", &[])
        .await
        .expect("reader reads projections")
        .get(0);
    assert_eq!(n, 1);
    for sql in [
        "INSERT INTO rm_1.parked_events (seq, subject, payload, reason, accounts) VALUES (99, 's', 'p', 'r', '{}')",
        "DELETE FROM rm_1.balances",
        "UPDATE public.readmodel_active SET generation = 7",
        "CREATE TABLE public.evil (x int)",
        "CREATE TABLE rm_1.evil (x int)",
        "CREATE SCHEMA evil",
        "DROP TABLE rm_1.balances",
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e}"
        );
    }
}

/// Runs the real binary with `args` and no read-model environment; returns (success, output).
fn run_readmodel(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftledger-readmodel"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RAFTLEDGER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run raftledger-readmodel");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn open_admin_off_loopback_refuses_to_start_unless_insecure() {
    // Port 1 on loopback: nothing listens, so a start that gets past the check fails fast.
    let pg = "host=127.0.0.1 port=1 user=x connect_timeout=2";
    let (ok, out) = run_readmodel(&["--listen", "0.0.0.0:0", "--postgres-url", pg]);
    assert!(!ok, "{out}");
    assert!(out.contains("refusing to start"), "{out}");
    assert!(out.contains("--admin-token"), "{out}");
    assert!(!out.contains("readmodel.started"), "{out}");

    // --insecure: past the check (fails later on the database), with the warning logged.
    let (ok, out) = run_readmodel(&["--listen", "0.0.0.0:0", "--postgres-url", pg, "--insecure"]);
    assert!(!ok, "{out}");
    assert!(!out.contains("refusing to start"), "{out}");
    assert!(out.contains("readmodel.insecure"), "{out}");
}

/// Every secret docker-compose.yml requires.
const COMPOSE_SECRETS: &[&str] = &[
    "RAFTLEDGER_CLUSTER_SECRET",
    "RAFTLEDGER_ADMIN_TOKEN",
    "RAFTLEDGER_READMODEL_ADMIN_TOKEN",
    "RAFTLEDGER_NATS_NODE_PASSWORD",
    "RAFTLEDGER_NATS_READMODEL_PASSWORD",
    "POSTGRES_PASSWORD",
    "RAFTLEDGER_PG_PROJECTOR_PASSWORD",
    "RAFTLEDGER_PG_READER_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
];

fn compose_config(without: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("docker-compose");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .current_dir(repo_root())
        .args(["-f", "docker-compose.yml", "config", "-q"]);
    for s in COMPOSE_SECRETS.iter().filter(|s| Some(**s) != without) {
        cmd.env(s, format!("test-{}", s.to_lowercase()));
    }
    let out = cmd
        .output()
        .expect("docker-compose not found: run scripts/install-deps.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compose_requires_every_secret_and_publishes_only_on_loopback() {
    let (ok, err) = compose_config(None);
    assert!(ok, "docker-compose config with every secret failed: {err}");
    for s in COMPOSE_SECRETS {
        let (ok, err) = compose_config(Some(s));
        assert!(!ok, "docker-compose config passed without {s}");
        assert!(err.contains(s), "error without {s} does not name it: {err}");
    }
    let compose = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    assert!(!compose.contains("change-me"), "no default secrets");
    let published: Vec<&str> = compose
        .lines()
        .filter(|l| l.trim_start().starts_with("ports:"))
        .collect();
    assert!(!published.is_empty());
    for line in &published {
        let items = line.split('[').nth(1).unwrap_or("");
        for item in items.trim_end_matches(']').split(',') {
            assert!(
                item.trim().trim_matches('"').starts_with("127.0.0.1:"),
                "published beyond loopback: {line}"
            );
        }
    }
    for port in ["4222", "5432", "9080", "8222"] {
        assert!(
            !published.iter().any(|l| l.contains(&format!(":{port}"))),
            "{port} must not be published"
        );
    }
}

/// A fresh CA, and a server certificate for 127.0.0.1/localhost it signed (made by the code
/// behind `raftledger certs`): (ca.pem, cert, key) PEMs.
fn ca_and_server_cert() -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let req = netserve::generate::CertsRequest {
        out: dir.path().to_owned(),
        nodes: vec![1],
        hosts: Vec::new(),
        force: false,
    };
    netserve::generate::generate(&req).unwrap();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    (
        read(netserve::generate::ca_path(dir.path())),
        read(netserve::generate::node_cert_path(dir.path(), 1)),
        read(netserve::generate::node_key_path(dir.path(), 1)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_nats_and_postgres_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server_cert();
    let (other_ca, _, _) = ca_and_server_cert();
    let write = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let (ca_path, other_ca_path) = (write("ca.pem", &ca), write("other-ca.pem", &other_ca));
    let (cert_path, key_path) = (write("server.pem", &cert), write("server-key.pem", &key));

    // PostgreSQL: sslmode=require verifies the server against --pg-tls-ca.
    let pg = LocalPostgres::start_tls(&dir.path().join("pg"), &cert, &key)
        .expect("postgres with TLS (install step)");
    let tls_url = format!("{} sslmode=require", pg.url());
    let trusted = readmodel::access::PgAccess::new(Some(&ca_path)).unwrap();
    let (c, conn) = trusted.connect(&tls_url).await.expect("TLS to PostgreSQL");
    tokio::spawn(conn);
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert!(c.query_one(ssl, &[]).await.unwrap().get::<_, bool>(0));
    let untrusted = readmodel::access::PgAccess::new(Some(&other_ca_path)).unwrap();
    let refused = untrusted.connect(&tls_url).await;
    assert!(refused.is_err(), "a server the CA did not sign is refused");
    let (plain, conn) = trusted.connect(&pg.url()).await.unwrap();
    tokio::spawn(conn);
    assert!(!plain.query_one(ssl, &[]).await.unwrap().get::<_, bool>(0));

    // NATS (the shipped config plus TLS): --nats-tls-ca required and verified.
    let nats = DeployNats::start(&dir.path().join("nats"), Some((&cert_path, &key_path)))
        .expect("nats-server with TLS");
    let mut node = user("raftledger_node", NODE_PASSWORD);
    node.tls_ca = Some(ca_path.clone());
    let js = jetstream::new(
        node.options()
            .await
            .unwrap()
            .connect(nats.url())
            .await
            .unwrap(),
    );
    nats::create_ledger_stream(&js).await.unwrap();
    js.publish("ledger.events.account_opened", opened(1, "bob").into())
        .await
        .unwrap()
        .await
        .unwrap();
    for tls_ca in [Some(other_ca_path.clone()), None] {
        let mut bad = user("raftledger_node", NODE_PASSWORD);
        bad.tls_ca = tls_ca.clone();
        let r = bad
            .options()
            .await
            .unwrap()
            .connection_timeout(Duration::from_secs(2))
            .connect(nats.url())
            .await;
        assert!(r.is_err(), "NATS TLS with CA {tls_ca:?} must fail");
    }

    // The read model over both: every connection it opens to PostgreSQL is TLS.
    let rm = readmodel::start(readmodel::config::ReadModelConfig {
        listen: "127.0.0.1:0".into(),
        nats_url: nats.url(),
        postgres_url: tls_url.clone(),
        query_connections_max: 2,
        header_read_timeout_ms: readmodel::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
        tls: Default::default(),
        access: AccessArgs {
            nats_user: Some("raftledger_readmodel".into()),
            nats_password: Some(READMODEL_PASSWORD.into()),
            nats_tls_ca: Some(ca_path.clone()),
            pg_tls_ca: Some(ca_path.clone()),
            ..Default::default()
        },
    })
    .await
    .expect("start read model over TLS");
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin_get(&rm.url(), "/v1/accounts/bob", None).await.0 != 200 {
        assert!(Instant::now() < deadline, "event not projected over TLS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plain_pid: i32 = plain
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.backend_type = 'client backend' AND a.pid <> $1",
            &[&plain_pid],
        )
        .await
        .unwrap();
    let (plain_backends, tls_backends): (i64, i64) = (row.get(0), row.get(1));
    // This test's own connection, the projector's, the watermark's and a pooled query one.
    assert!(tls_backends >= 4, "{tls_backends} TLS connections");
    assert_eq!(plain_backends, 0, "a read model connection without TLS");
}
