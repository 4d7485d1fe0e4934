//! "Insecure only on purpose": the start-up rule for a node reachable from the network.
//!
//! A node whose `--api` or `--raft` bind address is not loopback must have an admin token and a
//! cluster secret other than the development default, each at least [`SECRET_BYTES_MIN`] bytes;
//! otherwise it refuses to start, naming the missing flags, unless `--insecure` is given, in
//! which case it logs a warning on every start saying what is open. On loopback (the demo and
//! the tests) nothing is required.
//!
//! Loopback means an IP literal in `127.0.0.0/8` or `::1`, or the name `localhost`. Any other
//! name and the wildcard addresses `0.0.0.0` / `::` count as reachable from the network.

use crate::config::{NodeConfig, DEV_CLUSTER_SECRET};
use std::net::{IpAddr, SocketAddr};

/// Shortest admin token and cluster secret accepted off loopback: 16 bytes. A random token of
/// that length cannot be guessed online.
pub const SECRET_BYTES_MIN: usize = 16;

/// True when the bind address `host:port` is loopback only.
pub fn is_loopback_bind(addr: &str) -> bool {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return sa.ip().is_loopback();
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// What the exposure rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct Exposure<'a> {
    /// `--api` bind address.
    pub api: &'a str,
    /// `--raft` bind address.
    pub raft: &'a str,
    /// `--admin-token`.
    pub admin_token: Option<&'a str>,
    /// `--cluster-secret`.
    pub cluster_secret: &'a str,
    /// `--api-keys-file` given.
    pub api_keys: bool,
    /// `--insecure`.
    pub insecure: bool,
}

impl<'a> Exposure<'a> {
    /// The inputs of `cfg`.
    pub fn of(cfg: &'a NodeConfig) -> Self {
        Self {
            api: &cfg.api,
            raft: &cfg.raft,
            admin_token: cfg.admin_token.as_deref(),
            cluster_secret: &cfg.cluster_secret,
            api_keys: cfg.auth.api_keys_file.is_some(),
            insecure: cfg.auth.insecure,
        }
    }

    /// The bind flags that are not loopback, e.g. `["--api 0.0.0.0:8080"]`.
    pub fn public_binds(&self) -> Vec<String> {
        [("--api", self.api), ("--raft", self.raft)]
            .into_iter()
            .filter(|(_, a)| !is_loopback_bind(a))
            .map(|(flag, a)| format!("{flag} {a}"))
            .collect()
    }

    /// What is unprotected, one phrase per problem (empty: nothing).
    pub fn weaknesses(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.admin_token {
            None => out
                .push("--admin-token is not set (the /cluster/* admin routes are open)".to_owned()),
            Some(t) if t.len() < SECRET_BYTES_MIN => out.push(format!(
                "--admin-token is shorter than {SECRET_BYTES_MIN} bytes"
            )),
            Some(_) => {}
        }
        if self.cluster_secret == DEV_CLUSTER_SECRET {
            out.push(
                "--cluster-secret is the well-known development default (anyone can act as a peer)"
                    .to_owned(),
            );
        } else if self.cluster_secret.len() < SECRET_BYTES_MIN {
            out.push(format!(
                "--cluster-secret is shorter than {SECRET_BYTES_MIN} bytes"
            ));
        }
        out
    }

    /// Refuses a node reachable from the network with weaknesses, unless `--insecure`.
    pub fn check(&self) -> anyhow::Result<()> {
        let public = self.public_binds();
        let weak = self.weaknesses();
        if public.is_empty() || weak.is_empty() || self.insecure {
            return Ok(());
        }
        anyhow::bail!(
            "refusing to start: {} {} not a loopback address, so this node is reachable from the \
             network, but {}. Set --admin-token and --cluster-secret (each at least \
             {SECRET_BYTES_MIN} random bytes, e.g. `openssl rand -hex 32`), bind to 127.0.0.1, \
             or pass --insecure to run unprotected on purpose",
            public.join(" and "),
            if public.len() == 1 { "is" } else { "are" },
            weak.join("; ")
        )
    }

    /// With `--insecure`: one warning per start saying what is open. Called on every start.
    pub fn warn_if_insecure(&self) {
        if !self.insecure {
            return;
        }
        let mut open = self.weaknesses();
        if !self.api_keys {
            open.push("no --api-keys-file (the /v1 client API is open)".to_owned());
        }
        tracing::warn!(
            public_binds = ?self.public_binds(),
            open = ?open,
            "node.insecure: started with --insecure; the exposure checks are off and the listed \
             protections are missing"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure<'a>(
        api: &'a str,
        token: Option<&'a str>,
        secret: &'a str,
        insecure: bool,
    ) -> Exposure<'a> {
        Exposure {
            api,
            raft: "127.0.0.1:9080",
            admin_token: token,
            cluster_secret: secret,
            api_keys: false,
            insecure,
        }
    }

    #[test]
    fn loopback_binds() {
        for a in [
            "127.0.0.1:8080",
            "127.3.2.1:0",
            "[::1]:80",
            "localhost:8080",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback_bind(a), "{a}");
        }
        for a in [
            "0.0.0.0:8080",
            "[::]:80",
            "10.0.0.5:1",
            "node1.example:8080",
            "192.168.1.1:0",
        ] {
            assert!(!is_loopback_bind(a), "{a}");
        }
    }

    #[test]
    fn public_bind_needs_token_and_strong_secret_or_insecure() {
        let strong = "0123456789abcdef0123";
        assert!(exposure("127.0.0.1:0", None, DEV_CLUSTER_SECRET, false)
            .check()
            .is_ok());
        assert!(exposure("0.0.0.0:0", Some(strong), strong, false)
            .check()
            .is_ok());
        assert!(exposure("0.0.0.0:0", None, DEV_CLUSTER_SECRET, true)
            .check()
            .is_ok());
        let e = exposure("0.0.0.0:0", None, DEV_CLUSTER_SECRET, false)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--admin-token is not set")
                && e.contains("--cluster-secret is the well-known"),
            "{e}"
        );
        assert!(
            e.contains("--api 0.0.0.0:0") && e.contains("--insecure"),
            "{e}"
        );
        let e = exposure("0.0.0.0:0", Some("short"), "also-short", false)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--admin-token is shorter") && e.contains("--cluster-secret is shorter"),
            "{e}"
        );
    }
}
