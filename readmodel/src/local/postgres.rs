//! `LocalPostgres`: `initdb` + `postgres` in a temp dir on a free loopback port, trust auth,
//! user `postgres`. PostgreSQL refuses to run as root, so when we are root the data dir is
//! chowned to the unprivileged `postgres` user and both programs run with its uid/gid
//! (set on the child directly, so the child *is* the postmaster and can be signalled).

use super::{find_binary, free_port, tail, wait_port, INSTALL_HINT};
use anyhow::Context as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the server to accept connections after a (re)start.
const START_TIMEOUT_MS: u64 = 30_000;
/// Pause between two readiness probes while the server starts.
const READY_POLL_MS: u64 = 20;

/// A running (or stopped) local PostgreSQL server.
pub struct LocalPostgres {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    bindir: PathBuf,
    ids: Option<(u32, u32)>,
    child: Option<Child>,
    /// fsync and full-page writes on (a baseline to compare durable systems with).
    durable: bool,
}

/// Directory holding `initdb` and `postgres`.
pub fn bindir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("RAFTLEDGER_PG_BINDIR") {
        return Ok(PathBuf::from(d));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.reverse();
    let initdb = find_binary("initdb", &dirs)
        .with_context(|| format!("PostgreSQL initdb not found; {INSTALL_HINT}"))?;
    let dir = std::fs::canonicalize(&initdb)?
        .parent()
        .map(Path::to_path_buf)
        .context("initdb has no parent dir")?;
    anyhow::ensure!(
        dir.join("postgres").exists(),
        "no postgres next to {}; {INSTALL_HINT}",
        initdb.display()
    );
    Ok(dir)
}

/// uid/gid of the unprivileged user servers run as when we are root.
fn run_as_ids() -> anyhow::Result<Option<(u32, u32)>> {
    let id = |flag: &str, user: Option<&str>| -> anyhow::Result<u32> {
        let out = Command::new("id").arg(flag).args(user).output()?;
        anyhow::ensure!(
            out.status.success(),
            "user postgres missing; {INSTALL_HINT}"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    if id("-u", None)? != 0 {
        return Ok(None);
    }
    Ok(Some((
        id("-u", Some("postgres"))?,
        id("-g", Some("postgres"))?,
    )))
}

impl LocalPostgres {
    /// Creates a cluster under `dir` and starts it, without fsync (tests and the demo).
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, false, None)
    }

    /// Like [`LocalPostgres::start`], with TLS on (`ssl = on`) using the given PEM certificate
    /// and key. Plain connections stay allowed; clients choose TLS with `sslmode=require`.
    pub fn start_tls(dir: &Path, cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        Self::start_with(dir, false, Some((cert_pem, key_pem)))
    }

    /// Creates a cluster under `dir` and starts it with PostgreSQL's durable defaults (fsync,
    /// full-page writes, synchronous commit): a fair baseline for a system that syncs before it
    /// acknowledges.
    pub fn start_durable(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, true, None)
    }

    fn start_with(dir: &Path, durable: bool, tls: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let ids = run_as_ids()?;
        std::fs::create_dir_all(dir)?;
        let data = dir.join("pgdata");
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            let absolute = std::fs::canonicalize(dir)?;
            allow_traverse(absolute.parent())?;
        }
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null());
        if let Some((uid, gid)) = ids {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().context("run initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            port: free_port()?,
            log: dir.join("postgres.log"),
            data,
            bindir,
            ids,
            child: None,
            durable,
        };
        if let Some((cert, key)) = tls {
            pg.write_tls(cert, key)?;
        }
        pg.spawn()?;
        Ok(pg)
    }

    /// Writes `server.crt`/`server.key` (owned by the server user, key 0600) into the data
    /// dir and turns `ssl` on.
    fn write_tls(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let (cert, key) = (self.data.join("server.crt"), self.data.join("server.key"));
        std::fs::write(&cert, cert_pem)?;
        std::fs::write(&key, key_pem)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(&cert, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&key, Some(uid), Some(gid))?;
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str("\nssl = on\n");
        Ok(std::fs::write(&conf, text)?)
    }

    /// libpq key=value connection string.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(&self.log, Some(uid), Some(gid))?;
        }
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k", ""])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if !self.durable {
            // Test/demo servers: no fsync (the OS page cache survives a server crash; only a
            // machine crash would lose data, which these throw-away servers never face).
            cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().context("spawn postgres")?);
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        anyhow::ensure!(
            wait_port(self.port, Duration::from_millis(START_TIMEOUT_MS))
                && self.wait_accepting(deadline),
            "postgres did not accept connections on {} within {START_TIMEOUT_MS} ms:\n{}",
            self.port,
            tail(&self.log, 20)
        );
        Ok(())
    }

    /// Waits until the server accepts sessions (`pg_isready`), not only TCP connections: while
    /// it starts up or recovers it listens but answers "the database system is starting up".
    fn wait_accepting(&self, deadline: Instant) -> bool {
        let Ok(isready) = bindir().map(|b| b.join("pg_isready")) else {
            return false;
        };
        while Instant::now() < deadline {
            let ready = Command::new(&isready)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(READY_POLL_MS));
        }
        false
    }

    /// Immediate shutdown (SIGQUIT: like a crash, recovery runs on the next start), waited for.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &c.id().to_string()])
                .status();
            if wait_exit(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stops (immediate) and starts again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

/// Adds search (x) permission for others on `dir` and its ancestors that lack it (a private
/// temp dir made by root), so the unprivileged server user can reach its data dir.
fn allow_traverse(mut dir: Option<&Path>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    while let Some(d) = dir {
        let mut perm = std::fs::metadata(d)?.permissions();
        if perm.mode() & 0o001 != 0 {
            break;
        }
        perm.set_mode(perm.mode() | 0o001);
        std::fs::set_permissions(d, perm).with_context(|| format!("chmod o+x {}", d.display()))?;
        dir = d.parent();
    }
    Ok(())
}

fn wait_exit(c: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
