//! The client API gate, run before every route: the `Host` check (`--allowed-hosts`), client
//! API keys (`--api-keys-file`) and operator authorization of `/cluster/*` mutations.
//!
//! - `/healthz`, `/readyz`, `/metrics`: nothing (also exempt from the `Host` check).
//! - `GET /cluster/status`: nothing.
//! - `POST /cluster/*`: the admin token or an `admin` key; open only when neither a token nor
//!   a keys file is configured (then the node is on loopback, see `exposure`).
//! - `GET /v1/*`: a `read` key, when a keys file is configured.
//! - `POST /v1/*`: a `write` key, when a keys file is configured.
//!
//! Missing or unknown credentials are 401 `unauthenticated`, a key without the scope is 403
//! `forbidden`, a `Host` not in the list is 400 `bad_host`; nothing reaches a handler. Refusals
//! are logged with the key's name, never the key.

use super::api_keys::{ApiKeys, Scope};
use crate::api::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The gate's configuration.
#[derive(Clone, Default)]
pub struct ClientAuth {
    keys: Option<Arc<ApiKeys>>,
    admin_token: Option<Arc<str>>,
    allowed_hosts: Arc<[String]>,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Open,
    Key(Scope),
    Admin,
}

fn need(method: &Method, path: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/cluster/status" => Need::Open,
        p if p.starts_with("/cluster/") && !read => Need::Admin,
        p if p == "/v1" || p.starts_with("/v1/") => {
            Need::Key(if read { Scope::Read } else { Scope::Write })
        }
        _ => Need::Open,
    }
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !h.ends_with(':') =>
        {
            h
        }
        _ => host,
    }
}

impl ClientAuth {
    /// A gate with these keys (None: `/v1` open), admin token and allowed hosts (empty: any).
    pub fn new(keys: Option<ApiKeys>, admin_token: Option<&str>, allowed_hosts: &[String]) -> Self {
        Self {
            keys: keys.map(Arc::new),
            admin_token: admin_token.map(Into::into),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// The gate of a node configuration; loads (and so validates) the keys file.
    pub fn from_config(cfg: &crate::config::NodeConfig) -> anyhow::Result<Self> {
        let keys = match &cfg.auth.api_keys_file {
            Some(path) => Some(ApiKeys::load(path)?),
            None => None,
        };
        Ok(Self::new(
            keys,
            cfg.admin_token.as_deref(),
            &cfg.auth.allowed_hosts,
        ))
    }

    fn check_host(&self, req: &Request) -> Result<(), ApiError> {
        if self.allowed_hosts.is_empty() {
            return Ok(());
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.to_ascii_lowercase());
        let ok = host.as_deref().is_some_and(|h| {
            self.allowed_hosts
                .iter()
                .any(|a| a == h || a == without_port(h))
        });
        if ok {
            return Ok(());
        }
        Err(ApiError::bad_request(
            "bad_host",
            "the Host header is not one of this node's names (--allowed-hosts)",
        )
        .with_details(serde_json::json!({ "host": host })))
    }

    /// Decides a request: `Ok` lets it through.
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        let path = req.uri().path();
        let need = need(req.method(), path);
        if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
            self.check_host(req)?;
        }
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match need {
            Need::Open => Ok(()),
            Need::Key(_) if self.keys.is_none() => Ok(()),
            Need::Admin if self.keys.is_none() && self.admin_token.is_none() => Ok(()),
            Need::Admin
                if bearer
                    .zip(self.admin_token.as_deref())
                    .is_some_and(|(given, token)| {
                        super::constant_time_eq(given.as_bytes(), token.as_bytes())
                    }) =>
            {
                Ok(())
            }
            Need::Key(scope) => self.check_key(bearer, scope, path),
            Need::Admin => self.check_key(bearer, Scope::Admin, path),
        }
    }

    fn check_key(&self, bearer: Option<&str>, scope: Scope, path: &str) -> Result<(), ApiError> {
        let what = if scope == Scope::Admin {
            "admin routes need Authorization: Bearer <admin token or admin API key>"
        } else {
            "this route needs Authorization: Bearer <API key>"
        };
        let Some(given) = bearer else {
            return Err(ApiError::unauthorized(what));
        };
        let found = self.keys.as_deref().and_then(|k| k.lookup(given));
        let Some(key) = found else {
            tracing::warn!(route = path, "api.auth: unknown credentials refused");
            return Err(ApiError::unauthorized(what));
        };
        if key.scope.allows(scope) {
            return Ok(());
        }
        tracing::warn!(
            key = %key.name,
            has = key.scope.as_str(),
            needs = scope.as_str(),
            route = path,
            "api.auth: key lacks the scope"
        );
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "API key {:?} has scope {}; this route needs {}",
                key.name,
                key.scope.as_str(),
                scope.as_str()
            ),
        ))
    }
}

/// Middleware: [`ClientAuth::check`], then the route.
pub async fn gate(State(auth): State<ClientAuth>, req: Request, next: Next) -> Response {
    match auth.check(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_needs() {
        assert_eq!(need(&Method::GET, "/healthz"), Need::Open);
        assert_eq!(need(&Method::GET, "/cluster/status"), Need::Open);
        assert_eq!(need(&Method::POST, "/cluster/learners"), Need::Admin);
        assert_eq!(need(&Method::POST, "/cluster/snapshot"), Need::Admin);
        assert_eq!(need(&Method::GET, "/v1/accounts/a"), Need::Key(Scope::Read));
        assert_eq!(
            need(&Method::POST, "/v1/transfers"),
            Need::Key(Scope::Write)
        );
        assert_eq!(
            need(&Method::DELETE, "/v1/accounts/a"),
            Need::Key(Scope::Write)
        );
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(without_port("node1:8080"), "node1");
        assert_eq!(without_port("node1"), "node1");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }
}
