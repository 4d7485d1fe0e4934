//! One userspace TCP proxy per directed link `from -> to`: node `from` dials the proxy (via
//! `--peer-raft-addr to=<proxy>`) instead of node `to`'s Raft port, so the harness can cut, hold,
//! delay or drop that direction alone. A link carries `from`'s requests to `to` and their
//! replies; the reverse direction is the separate link `to -> from`.
//!
//! This kernel has no `tc netem`, so faults are made here, in user space, without root.

use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bytes read per copy step: one Raft RPC is usually smaller, so delays apply per request.
const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Connect timeout to the real Raft port: loopback, so longer means the node is down/paused.
const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 1_000;

/// What a link does to traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LinkMode {
    /// Partitioned: open connections are severed, new ones are accepted and held silent
    /// (a black hole: the dialer times out, as on a real partition) until the link heals.
    pub blocked: bool,
    /// Extra latency added to every chunk forwarded, both directions.
    pub delay_ms: u64,
    /// Fraction (per mille) of new connections closed at once instead of forwarded. Switching
    /// it on also severs open connections, so the nodes' pooled keep-alive connections must
    /// reconnect through the lossy link.
    pub drop_per_mille: u32,
}

/// Counters that prove a fault took effect.
#[derive(Debug, Default)]
struct LinkStats {
    accepted: AtomicU64,
    forwarded: AtomicU64,
    blackholed: AtomicU64,
    severed: AtomicU64,
    dropped: AtomicU64,
    delayed_chunks: AtomicU64,
}

/// A snapshot of a link's counters.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct LinkCounts {
    /// Connections accepted from the dialer.
    pub accepted: u64,
    /// Connections forwarded to the real port.
    pub forwarded: u64,
    /// Connections held silent while blocked.
    pub blackholed: u64,
    /// Open connections cut when the link became blocked.
    pub severed: u64,
    /// Connections closed at once by `drop_per_mille`.
    pub dropped: u64,
    /// Chunks that waited `delay_ms`.
    pub delayed_chunks: u64,
}

impl LinkCounts {
    /// Element-wise `self - earlier`.
    pub fn since(&self, earlier: &LinkCounts) -> LinkCounts {
        LinkCounts {
            accepted: self.accepted - earlier.accepted,
            forwarded: self.forwarded - earlier.forwarded,
            blackholed: self.blackholed - earlier.blackholed,
            severed: self.severed - earlier.severed,
            dropped: self.dropped - earlier.dropped,
            delayed_chunks: self.delayed_chunks - earlier.delayed_chunks,
        }
    }

    /// Element-wise sum.
    pub fn plus(&self, o: &LinkCounts) -> LinkCounts {
        LinkCounts {
            accepted: self.accepted + o.accepted,
            forwarded: self.forwarded + o.forwarded,
            blackholed: self.blackholed + o.blackholed,
            severed: self.severed + o.severed,
            dropped: self.dropped + o.dropped,
            delayed_chunks: self.delayed_chunks + o.delayed_chunks,
        }
    }
}

struct Shared {
    mode: watch::Sender<LinkMode>,
    stats: LinkStats,
    upstream: String,
}

/// One directed link's proxy (runs until dropped).
pub struct LinkProxy {
    /// Port the dialing node connects to.
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let std_listener = crate::ports::listener()?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let port = listener.local_addr()?.port();
        let (mode, _) = watch::channel(LinkMode::default());
        let shared = Arc::new(Shared {
            mode,
            stats: LinkStats::default(),
            upstream,
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                s.stats.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(handle(s.clone(), conn));
            }
        });
        Ok(Self { port, shared, task })
    }

    /// Sets the link's behaviour; blocking severs open connections at once.
    pub fn set(&self, mode: LinkMode) {
        self.shared.mode.send_replace(mode);
    }

    /// Current behaviour.
    pub fn mode(&self) -> LinkMode {
        *self.shared.mode.borrow()
    }

    /// Counter snapshot.
    pub fn counts(&self) -> LinkCounts {
        let s = &self.shared.stats;
        LinkCounts {
            accepted: s.accepted.load(Ordering::Relaxed),
            forwarded: s.forwarded.load(Ordering::Relaxed),
            blackholed: s.blackholed.load(Ordering::Relaxed),
            severed: s.severed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            delayed_chunks: s.delayed_chunks.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Wake and end held and open connections.
        self.shared.mode.send_replace(LinkMode {
            blocked: true,
            ..LinkMode::default()
        });
    }
}

async fn handle(s: Arc<Shared>, conn: TcpStream) {
    let mut rx = s.mode.subscribe();
    let mode = *rx.borrow_and_update();
    if mode.blocked {
        s.stats.blackholed.fetch_add(1, Ordering::Relaxed);
        // Hold the connection silent until the link changes, then close it.
        let _ = rx.changed().await;
        return;
    }
    if mode.drop_per_mille > 0 && rand::rng().random_range(0..1000) < mode.drop_per_mille {
        s.stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let connect = TcpStream::connect(s.upstream.as_str());
    let Ok(Ok(up)) =
        tokio::time::timeout(Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS), connect).await
    else {
        return;
    };
    let _ = up.set_nodelay(true);
    s.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    let (cr, cw) = conn.into_split();
    let (ur, uw) = up.into_split();
    let blocked = async {
        loop {
            if rx.changed().await.is_err() {
                return;
            }
            let m = *rx.borrow();
            if m.blocked || m.drop_per_mille > 0 {
                return;
            }
        }
    };
    tokio::select! {
        _ = copy(&s, cr, uw) => {}
        _ = copy(&s, ur, cw) => {}
        _ = blocked => { s.stats.severed.fetch_add(1, Ordering::Relaxed); }
    }
}

/// Copies one direction, waiting the link's current `delay_ms` before each chunk.
async fn copy(
    s: &Shared,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let mut buf = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay_ms = s.mode.borrow().delay_ms;
        if delay_ms > 0 {
            s.stats.delayed_chunks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Every directed link between `n` nodes.
pub struct Mesh {
    links: BTreeMap<(u64, u64), LinkProxy>,
}

impl Mesh {
    /// Proxies for every ordered pair of distinct node ids; `raft_ports[id]` is each node's
    /// real Raft port.
    pub async fn start(raft_ports: &BTreeMap<u64, u16>) -> std::io::Result<Self> {
        let mut links = BTreeMap::new();
        for &from in raft_ports.keys() {
            for (&to, &port) in raft_ports {
                if from != to {
                    let p = LinkProxy::start(format!("127.0.0.1:{port}")).await?;
                    links.insert((from, to), p);
                }
            }
        }
        Ok(Self { links })
    }

    /// The `--peer-raft-addr` value for node `from`: every peer through its link proxy.
    pub fn peer_raft_addr_arg(&self, from: u64) -> String {
        self.links
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|((_, to), p)| format!("{to}=http://127.0.0.1:{}", p.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Sets one directed link.
    pub fn set(&self, from: u64, to: u64, mode: LinkMode) {
        if let Some(p) = self.links.get(&(from, to)) {
            p.set(mode);
        }
    }

    /// Blocks both directions between every node of `a` and every node of `b`.
    pub fn cut_between(&self, a: &[u64], b: &[u64]) {
        let blocked = LinkMode {
            blocked: true,
            ..LinkMode::default()
        };
        for &x in a {
            for &y in b {
                self.set(x, y, blocked);
                self.set(y, x, blocked);
            }
        }
    }

    /// Applies `mode` to every link.
    pub fn set_all(&self, mode: LinkMode) {
        for p in self.links.values() {
            p.set(mode);
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.set_all(LinkMode::default());
    }

    /// Sum of every link's counters.
    pub fn total_counts(&self) -> LinkCounts {
        self.links
            .values()
            .fold(LinkCounts::default(), |acc, p| acc.plus(&p.counts()))
    }

    /// Links that are not in the default mode.
    pub fn faulty_links(&self) -> Vec<(u64, u64, LinkMode)> {
        self.links
            .iter()
            .filter(|(_, p)| p.mode() != LinkMode::default())
            .map(|((f, t), p)| (*f, *t, p.mode()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = c.read(&mut b).await {
                        if n == 0 || c.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn roundtrip(port: u16, timeout_ms: u64) -> Option<Vec<u8>> {
        let f = async {
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            c.write_all(b"ping").await.ok()?;
            let mut b = [0u8; 4];
            c.read_exact(&mut b).await.ok()?;
            Some(b.to_vec())
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), f)
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn forwards_blocks_delays_and_drops() {
        let up = echo_server().await;
        let p = LinkProxy::start(format!("127.0.0.1:{up}")).await.unwrap();
        assert_eq!(
            roundtrip(p.port, 2_000).await.as_deref(),
            Some(&b"ping"[..])
        );

        p.set(LinkMode {
            blocked: true,
            ..LinkMode::default()
        });
        assert_eq!(roundtrip(p.port, 300).await, None, "blocked link answered");
        assert!(p.counts().blackholed >= 1);

        p.set(LinkMode {
            delay_ms: 150,
            ..LinkMode::default()
        });
        let t = std::time::Instant::now();
        assert!(roundtrip(p.port, 2_000).await.is_some());
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert!(p.counts().delayed_chunks >= 2);

        p.set(LinkMode {
            drop_per_mille: 1000,
            ..LinkMode::default()
        });
        assert_eq!(
            roundtrip(p.port, 1_000).await,
            None,
            "dropped link answered"
        );
        assert!(p.counts().dropped >= 1);

        p.set(LinkMode::default());
        assert!(roundtrip(p.port, 2_000).await.is_some());
    }

    #[tokio::test]
    async fn blocking_severs_open_connections() {
        let up = echo_server().await;
        let p = LinkProxy::start(format!("127.0.0.1:{up}")).await.unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
        c.write_all(b"a").await.unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.unwrap();
        p.set(LinkMode {
            blocked: true,
            ..LinkMode::default()
        });
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut b))
            .await
            .expect("severed connection must close");
        assert!(matches!(n, Ok(0) | Err(_)));
        assert_eq!(p.counts().severed, 1);
    }
}
