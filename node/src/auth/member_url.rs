//! Validation of member URLs: the API and Raft URLs of a learner (`POST /cluster/learners`),
//! of `/cluster/init` members, of `--peers` and the `--join` URL.
//!
//! A member URL is `http` or `https`, has a host, and has no user info, query or fragment (the
//! node appends paths to it). With `--peer-allow`, the host (or `host:port`) must match one of
//! the patterns: an exact host, `host:port`, or `*.domain` (any subdomain of `domain`).

use reqwest::Url;

/// One `--peer-allow` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Lowercase host, or `.domain` for a `*.domain` pattern.
    host: String,
    /// Required port, if the pattern has one.
    port: Option<u16>,
}

/// The `--peer-allow` list (empty: every host allowed).
#[derive(Debug, Clone, Default)]
pub struct PeerAllow(Vec<Pattern>);

impl PeerAllow {
    /// Parses the patterns; an unparsable one is an error naming it.
    pub fn parse(patterns: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for p in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let (wild, rest) = match p.strip_prefix("*.") {
                Some(r) => (true, r),
                None => (false, p),
            };
            let url = Url::parse(&format!("http://{rest}"))
                .map_err(|e| format!("--peer-allow {p:?}: {e}"))?;
            let host = url
                .host_str()
                .filter(|_| url.path() == "/" && url.username().is_empty())
                .ok_or_else(|| format!("--peer-allow {p:?}: expected host or host:port"))?
                .to_ascii_lowercase();
            out.push(Pattern {
                host: if wild { format!(".{host}") } else { host },
                port: url.port(),
            });
        }
        Ok(Self(out))
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| {
                let host_ok = match p.host.strip_prefix('.') {
                    Some(domain) => host.ends_with(&p.host) && host.len() > domain.len() + 1,
                    None => host == p.host,
                };
                host_ok && p.port.is_none_or(|want| want == port)
            })
    }
}

/// Checks one member URL (`what` names it in the error, e.g. `raft`).
pub fn validate(what: &str, url: &str, allow: &PeerAllow) -> Result<(), String> {
    let u = Url::parse(url).map_err(|e| format!("{what} URL {url:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{what} URL {url:?}: scheme must be http or https"));
    }
    let Some(host) = u.host_str() else {
        return Err(format!("{what} URL {url:?}: no host"));
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{what} URL {url:?}: user info is not allowed"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{what} URL {url:?}: query and fragment are not allowed"
        ));
    }
    if u.path() != "/" {
        return Err(format!("{what} URL {url:?}: must not have a path"));
    }
    let port = u.port_or_known_default().unwrap_or(80);
    if !allow.allows(&host.to_ascii_lowercase(), port) {
        return Err(format!("{what} URL {url:?}: host is not in --peer-allow"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rules() {
        let any = PeerAllow::default();
        for ok in [
            "http://127.0.0.1:9080",
            "https://node1.example:9080/",
            "http://[::1]:1",
        ] {
            assert_eq!(validate("raft", ok, &any), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://h:1",
            "file:///etc/passwd",
            "http://user:pw@h:1",
            "http://h:1/?x=1",
            "http://h:1/#f",
            "http://h:1/some/path",
            "not a url",
            "h:1",
        ] {
            assert!(validate("raft", bad, &any).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_list() {
        let allow = PeerAllow::parse(&[
            "10.0.0.1".into(),
            "node2.lan:9080".into(),
            "*.cluster.internal".into(),
        ])
        .unwrap();
        for ok in [
            "http://10.0.0.1:9999",
            "http://node2.lan:9080",
            "https://a.cluster.internal:1",
            "http://NODE2.lan:9080",
        ] {
            assert_eq!(validate("raft", ok, &allow), Ok(()), "{ok}");
        }
        for bad in [
            "http://10.0.0.2:1",
            "http://node2.lan:9081",
            "http://cluster.internal:1",
            "http://evilcluster.internal:1",
        ] {
            assert!(validate("raft", bad, &allow).is_err(), "{bad}");
        }
        assert!(PeerAllow::parse(&["http://x/y".into()]).is_err());
    }
}
