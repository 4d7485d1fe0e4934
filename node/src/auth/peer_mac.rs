//! Mutual authentication of Raft RPC between peers, without ever sending the cluster secret.
//!
//! The client signs every request: `HMAC-SHA256(secret, "raftledger-rpc-v1" | method | path |
//! timestamp_ms | nonce | SHA-256(body))`, sent with the timestamp, the nonce and the body digest
//! in headers. The server checks the MAC in constant time and the timestamp within
//! [`CLOCK_SKEW_MS_MAX`] before it reads the body, then checks the body against the signed digest
//! (for a streamed snapshot: a running digest, checked before the snapshot is installed).
//!
//! The server signs its answer: `HMAC-SHA256(secret, "raftledger-reply-v1" | request nonce |
//! status | SHA-256(response body))`. The client trusts a 2xx answer only with a valid reply MAC,
//! so a process that does not know the secret (e.g. a learner added at a hostile URL) can
//! neither receive the secret nor pass itself off as a peer.
//!
//! Covered: method, path, body, freshness, and the binding of each answer to its request.
//! Not covered: replay of a captured request within the skew window; Raft RPCs are safe to
//! repeat, and a repeated forwarded write is deduplicated by its command ids. Encryption is
//! TLS's job.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// Request header: milliseconds since the Unix epoch when the request was signed.
pub const TS_HEADER: &str = "x-raftledger-ts";
/// Request header: 16 random bytes, hex, unique per request.
pub const NONCE_HEADER: &str = "x-raftledger-nonce";
/// Request header: SHA-256 of the request body, hex.
pub const BODY_HEADER: &str = "x-raftledger-body-sha256";
/// Request header: the request MAC, hex.
pub const MAC_HEADER: &str = "x-raftledger-mac";
/// Response header: the reply MAC, hex.
pub const REPLY_MAC_HEADER: &str = "x-raftledger-reply-mac";
/// Largest accepted difference between a request's timestamp and the server's clock (ms).
pub const CLOCK_SKEW_MS_MAX: u64 = 60_000;

const REQUEST_DOMAIN: &[u8] = b"raftledger-rpc-v1";
const REPLY_DOMAIN: &[u8] = b"raftledger-reply-v1";
const NONCE_BYTES: usize = 16;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a request's signature was refused (logged; the peer only sees a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// A signature header is absent or not well-formed.
    #[error("missing or malformed signature header {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the skew window.
    #[error("timestamp {ts_ms} is more than {CLOCK_SKEW_MS_MAX} ms away from now ({now_ms})")]
    Stale {
        /// Signed timestamp.
        ts_ms: u64,
        /// Server clock.
        now_ms: u64,
    },
    /// The MAC does not match: the signer does not know the cluster secret, or the request was
    /// altered.
    #[error("bad MAC (wrong cluster secret or altered request)")]
    BadMac,
}

/// What a verified request signed: its nonce (for the reply MAC) and its body digest (checked
/// against the body when it is read).
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    /// The request nonce, hex.
    pub nonce: String,
    /// The signed SHA-256 of the body.
    pub body_sha256: [u8; 32],
}

impl VerifiedRequest {
    /// True when `digest` is the signed body digest.
    pub fn body_matches(&self, digest: &[u8; 32]) -> bool {
        crate::auth::constant_time_eq(digest, &self.body_sha256)
    }
}

/// The signature headers of one outgoing request.
#[derive(Debug, Clone)]
pub struct RequestSignature {
    /// Signing time (ms since the epoch).
    pub ts_ms: u64,
    /// Nonce, hex.
    pub nonce: String,
    /// Body digest, hex.
    pub body_sha256: String,
    /// MAC, hex.
    pub mac: String,
}

impl RequestSignature {
    /// The headers to attach: (name, value).
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (TS_HEADER, self.ts_ms.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (BODY_HEADER, self.body_sha256.clone()),
            (MAC_HEADER, self.mac.clone()),
        ]
    }
}

/// The cluster secret as a MAC key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct PeerKey(Arc<[u8]>);

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(<redacted>)")
    }
}

impl PeerKey {
    /// The key of cluster secret `secret`.
    pub fn new(secret: &str) -> Self {
        Self(secret.as_bytes().into())
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for p in parts {
            // Length-prefixed, so no two different part lists sign the same bytes.
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m
    }

    fn request_mac(
        &self,
        method: &str,
        path: &str,
        ts_ms: u64,
        nonce: &str,
        body: &str,
    ) -> HmacSha256 {
        self.mac(&[
            REQUEST_DOMAIN,
            method.as_bytes(),
            path.as_bytes(),
            ts_ms.to_string().as_bytes(),
            nonce.as_bytes(),
            body.as_bytes(),
        ])
    }

    /// Signs a request to `path` whose body has digest `body_sha256`, now, with a fresh nonce.
    pub fn sign_request(
        &self,
        method: &str,
        path: &str,
        body_sha256: &[u8; 32],
    ) -> RequestSignature {
        self.sign_request_at(method, path, body_sha256, now_ms())
    }

    /// As [`Self::sign_request`] at a given time (tests: skew).
    pub fn sign_request_at(
        &self,
        method: &str,
        path: &str,
        body_sha256: &[u8; 32],
        ts_ms: u64,
    ) -> RequestSignature {
        let nonce = hex::encode(rand::random::<[u8; NONCE_BYTES]>());
        let body = hex::encode(body_sha256);
        let mac = self.request_mac(method, path, ts_ms, &nonce, &body);
        RequestSignature {
            ts_ms,
            nonce,
            body_sha256: body,
            mac: hex::encode(mac.finalize().into_bytes()),
        }
    }

    /// Verifies a request's signature headers against this key and the clock `now_ms`.
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        now_ms: u64,
    ) -> Result<VerifiedRequest, MacError> {
        let text = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(MacError::Malformed(name))
        };
        let ts_ms: u64 = text(TS_HEADER)?
            .parse()
            .map_err(|_| MacError::Malformed(TS_HEADER))?;
        let nonce = text(NONCE_HEADER)?;
        if nonce.len() != 2 * NONCE_BYTES || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MacError::Malformed(NONCE_HEADER));
        }
        let body = text(BODY_HEADER)?;
        let body_sha256: [u8; 32] = hex::decode(body)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(MacError::Malformed(BODY_HEADER))?;
        let mac = hex::decode(text(MAC_HEADER)?).map_err(|_| MacError::Malformed(MAC_HEADER))?;
        self.request_mac(method, path, ts_ms, nonce, body)
            .verify_slice(&mac)
            .map_err(|_| MacError::BadMac)?;
        // Checked after the MAC, so an unauthenticated caller learns nothing about our clock.
        if ts_ms.abs_diff(now_ms) > CLOCK_SKEW_MS_MAX {
            return Err(MacError::Stale { ts_ms, now_ms });
        }
        Ok(VerifiedRequest {
            nonce: nonce.to_owned(),
            body_sha256,
        })
    }

    fn reply_mac(&self, nonce: &str, status: u16, body_sha256: &[u8; 32]) -> HmacSha256 {
        self.mac(&[
            REPLY_DOMAIN,
            nonce.as_bytes(),
            status.to_string().as_bytes(),
            body_sha256,
        ])
    }

    /// The reply MAC (hex) of an answer with `status` and body digest `body_sha256` to the
    /// request with `nonce`.
    pub fn sign_reply(&self, nonce: &str, status: u16, body_sha256: &[u8; 32]) -> String {
        hex::encode(
            self.reply_mac(nonce, status, body_sha256)
                .finalize()
                .into_bytes(),
        )
    }

    /// True when `mac_hex` is the reply MAC of that answer (constant time).
    pub fn verify_reply(
        &self,
        nonce: &str,
        status: u16,
        body_sha256: &[u8; 32],
        mac_hex: &[u8],
    ) -> bool {
        let Ok(mac) = hex::decode(mac_hex) else {
            return false;
        };
        self.reply_mac(nonce, status, body_sha256)
            .verify_slice(&mac)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers_of(sig: &RequestSignature) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in sig.headers() {
            h.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        h
    }

    #[test]
    fn signed_request_verifies_and_carries_its_body_digest() {
        let key = PeerKey::new("a-cluster-secret-of-some-length");
        let digest = sha256(b"body");
        let sig = key.sign_request("POST", "/raft/append", &digest);
        let v = key
            .verify_request("POST", "/raft/append", &headers_of(&sig), now_ms())
            .expect("verifies");
        assert!(v.body_matches(&digest));
        assert!(!v.body_matches(&sha256(b"other body")));
        assert_eq!(v.nonce, sig.nonce);
    }

    #[test]
    fn wrong_secret_path_method_or_tampered_header_is_refused() {
        let key = PeerKey::new("right-secret-right-secret");
        let digest = sha256(b"body");
        let sig = key.sign_request("POST", "/raft/append", &digest);
        let h = headers_of(&sig);
        let now = now_ms();
        let other = PeerKey::new("wrong-secret-wrong-secret");
        assert_eq!(
            other
                .verify_request("POST", "/raft/append", &h, now)
                .unwrap_err(),
            MacError::BadMac
        );
        assert_eq!(
            key.verify_request("POST", "/raft/vote", &h, now)
                .unwrap_err(),
            MacError::BadMac
        );
        assert_eq!(
            key.verify_request("GET", "/raft/append", &h, now)
                .unwrap_err(),
            MacError::BadMac
        );
        for (name, value) in [
            (TS_HEADER, (sig.ts_ms + 1).to_string()),
            (NONCE_HEADER, "00".repeat(NONCE_BYTES)),
            (BODY_HEADER, hex::encode(sha256(b"tampered"))),
        ] {
            let mut t = h.clone();
            t.insert(name, HeaderValue::from_str(&value).unwrap());
            assert_eq!(
                key.verify_request("POST", "/raft/append", &t, now)
                    .unwrap_err(),
                MacError::BadMac,
                "{name}"
            );
        }
        let mut missing = h.clone();
        missing.remove(MAC_HEADER);
        assert_eq!(
            key.verify_request("POST", "/raft/append", &missing, now)
                .unwrap_err(),
            MacError::Malformed(MAC_HEADER)
        );
    }

    #[test]
    fn timestamps_outside_the_skew_window_are_refused() {
        let key = PeerKey::new("skew-secret-skew-secret");
        let digest = sha256(b"");
        let now = now_ms();
        for (offset, ok) in [
            (0i64, true),
            (59_000, true),
            (-59_000, true),
            (61_000, false),
            (-61_000, false),
        ] {
            let ts = (now as i64 + offset) as u64;
            let sig = key.sign_request_at("POST", "/raft/vote", &digest, ts);
            let r = key.verify_request("POST", "/raft/vote", &headers_of(&sig), now);
            assert_eq!(r.is_ok(), ok, "offset {offset}: {r:?}");
        }
    }

    #[test]
    fn reply_mac_binds_nonce_status_and_body() {
        let key = PeerKey::new("reply-secret-reply-secret");
        let body = sha256(b"reply");
        let mac = key.sign_reply("aa", 200, &body);
        assert!(key.verify_reply("aa", 200, &body, mac.as_bytes()));
        assert!(!key.verify_reply("ab", 200, &body, mac.as_bytes()));
        assert!(!key.verify_reply("aa", 503, &body, mac.as_bytes()));
        assert!(!key.verify_reply("aa", 200, &sha256(b"forged"), mac.as_bytes()));
        assert!(!PeerKey::new("other").verify_reply("aa", 200, &body, mac.as_bytes()));
        assert!(!key.verify_reply("aa", 200, &body, b"not hex"));
        // A request MAC cannot be replayed as a reply MAC (domain separation).
        let sig = key.sign_request_at("POST", "/raft/vote", &body, 1);
        assert!(!key.verify_reply(&sig.nonce, 200, &body, sig.mac.as_bytes()));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", PeerKey::new("hunter2-hunter2")).contains("hunter2"));
    }
}
