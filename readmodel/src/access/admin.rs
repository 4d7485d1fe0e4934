//! The `/admin/*` bearer token: compared in constant time (SHA-256 digests of both sides, so
//! neither content nor length leaks through timing), and the start-up rule that the admin
//! routes are open only on a loopback listener unless the operator said `--insecure`.

use sha2::{Digest, Sha256};
use std::net::{SocketAddr, ToSocketAddrs};
use subtle::ConstantTimeEq;

/// The configured admin token (its digest only; the token itself is not kept).
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token; empty tokens are refused.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !token.trim().is_empty(),
            "--admin-token (RAFTLEDGER_READMODEL_ADMIN_TOKEN) must not be empty"
        );
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token, in time independent of both values.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }
}

/// Decides at start-up whether the admin routes may run with `token` on `listen`: a token is
/// always fine; no token is fine on a loopback address; otherwise only with `insecure`, which
/// is logged as a warning. Returns the token to enforce (`None`: admin routes open).
pub fn policy(
    listen: &str,
    token: Option<&str>,
    insecure: bool,
) -> anyhow::Result<Option<AdminToken>> {
    let token = token.map(AdminToken::new).transpose()?;
    if insecure {
        tracing::warn!(
            listen,
            admin_token = token.is_some(),
            "readmodel.insecure: --insecure given; the read model may serve a network without an admin token and in clear text"
        );
    }
    if token.is_none() && !insecure && !is_loopback(listen) {
        anyhow::bail!(
            "refusing to start: --listen {listen} is not a loopback address and no admin token \
             is set, so /admin/* (rebuild, parked events) would be open to the network. Set \
             --admin-token (or RAFTLEDGER_READMODEL_ADMIN_TOKEN), bind 127.0.0.1, or pass \
             --insecure to run without one on purpose"
        );
    }
    Ok(token)
}

/// Whether every address `listen` resolves to is a loopback address (an unresolvable one is not).
pub fn is_loopback(listen: &str) -> bool {
    let addrs: Vec<SocketAddr> = match listen.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) => listen
            .to_socket_addrs()
            .map(|i| i.collect())
            .unwrap_or_default(),
    };
    !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        assert!(is_loopback("127.0.0.1:0"));
        assert!(is_loopback("[::1]:8090"));
        assert!(!is_loopback("0.0.0.0:8090"));
        assert!(!is_loopback("10.1.2.3:8090"));
        assert!(policy("0.0.0.0:1", None, false).is_err());
        assert!(policy("0.0.0.0:1", None, true).unwrap().is_none());
        assert!(policy("0.0.0.0:1", Some("t"), false).unwrap().is_some());
        assert!(policy("127.0.0.1:1", Some(" "), false).is_err());
    }

    #[test]
    fn token_compare() {
        let t = AdminToken::new("s3cret").unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
    }
}
