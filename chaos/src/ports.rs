//! Loopback ports for everything one harness process starts. A port found free (bind to :0,
//! read it, release it) stays free only until someone binds it, and the kernel may hand the
//! same number to the next bind to :0 — in a drill that was a link proxy taking a node's Raft
//! port before the node started, so the node failed to bind and its peers reached another node
//! through that proxy. Every port handed out here is remembered, and never handed out again by
//! this process, whether it goes to a node, a server or a link proxy.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Attempts to find a port not handed out before.
const ATTEMPTS_MAX: usize = 1_000;

static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn claim_new(port: u16) -> bool {
    TAKEN.lock().map(|mut t| t.insert(port)).unwrap_or(false)
}

/// Records `port` as used (a server that picked its own port).
pub fn claim(port: u16) {
    claim_new(port);
}

/// A free loopback port no other caller in this process got (released for the caller to bind).
pub fn free() -> std::io::Result<u16> {
    let l = listener()?;
    Ok(l.local_addr()?.port())
}

/// A listener on a loopback port no other caller in this process got.
pub fn listener() -> std::io::Result<std::net::TcpListener> {
    // Listeners on taken ports are held until a fresh one is found, so the kernel moves on.
    let mut held = Vec::new();
    for _ in 0..ATTEMPTS_MAX {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        if claim_new(l.local_addr()?.port()) {
            return Ok(l);
        }
        held.push(l);
    }
    Err(std::io::Error::other("no fresh loopback port"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_hands_out_a_port_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            assert!(seen.insert(super::free().unwrap()), "port handed out twice");
        }
        let l = super::listener().unwrap();
        assert!(!seen.contains(&l.local_addr().unwrap().port()));
    }
}
