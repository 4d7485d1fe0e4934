//! Local, throw-away servers for tests and `raftledger demo --with-readmodel`: a JetStream
//! `nats-server` and a PostgreSQL server, each in its own temp dir on a free loopback port.
//! Binaries come from the project's install step (`scripts/install-deps.sh`); when one is
//! missing these fail loudly with that hint, never skip.
//!
//! - `nats`     — `LocalNats`: start, crash (SIGKILL), restart on the same port and store.
//! - `deploy_nats` — `DeployNats`: nats-server with the shipped `deploy/nats.conf` (users).
//! - `postgres` — `LocalPostgres`: initdb + postgres as an unprivileged user when run as root.

pub mod deploy_nats;
pub mod nats;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Hint printed when a server binary is missing.
pub const INSTALL_HINT: &str =
    "run scripts/install-deps.sh (provides nats-server >= 2.10 and PostgreSQL)";

/// A free loopback TCP port (bind :0, read, release).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// First executable named `name` in `dirs`, then in `PATH`.
pub fn find_binary(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.iter()
        .chain(path_dirs.iter())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Last `n` lines of a log file (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
