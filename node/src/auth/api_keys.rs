//! Client API keys with a scope, kept as SHA-256 hashes (`--api-keys-file`).
//!
//! File format, one key per line: `name scope sha256_hex`, where `scope` is `read`, `write` or
//! `admin`; blank lines and `#` comments are ignored. A key is [`KEY_PREFIX`] followed by 32
//! random bytes in hex, so a fast hash is the right one: there is nothing to brute-force. Keys
//! are made by `raftledger apikey`, which prints the key once and the line to store.
//!
//! Scopes nest: `admin` ⊇ `write` ⊇ `read`. A lookup hashes the presented key and compares it
//! with every stored hash in constant time.

use anyhow::Context;
use std::path::Path;

/// Prefix of generated keys (makes them recognisable to secret scanners).
pub const KEY_PREFIX: &str = "rlk_";
/// Random bytes in a generated key.
pub const KEY_RANDOM_BYTES: usize = 32;
/// Longest key name.
const NAME_CHARS_MAX: usize = 64;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET routes.
    Read,
    /// GET and POST routes under `/v1`.
    Write,
    /// Everything, `/cluster/*` mutations included.
    Admin,
}

impl Scope {
    /// Parses `read` / `write` / `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The scope's name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// True when this scope includes `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

/// One stored key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Name (logged; never the key).
    pub name: String,
    /// Scope.
    pub scope: Scope,
    hash: [u8; 32],
}

/// The loaded keys file.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<ApiKey>);

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= NAME_CHARS_MAX
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

impl ApiKeys {
    /// Reads and parses the keys file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--api-keys-file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("--api-keys-file {}: {e}", path.display()))
    }

    /// Parses keys file text; the error names the offending line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scope, hash] = fields[..] else {
                return Err(format!("line {line_no}: expected `name scope sha256_hex`"));
            };
            if !valid_name(name) {
                return Err(format!(
                    "line {line_no}: name must be 1-{NAME_CHARS_MAX} of A-Z a-z 0-9 - _ . @"
                ));
            }
            let scope = Scope::parse(scope).ok_or_else(|| {
                format!("line {line_no}: scope must be read, write or admin, not {scope:?}")
            })?;
            let hash: [u8; 32] = hex::decode(hash)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| format!("line {line_no}: hash must be 64 hex digits (SHA-256)"))?;
            if keys.iter().any(|k| k.name == name) {
                return Err(format!("line {line_no}: duplicate name {name:?}"));
            }
            if keys.iter().any(|k| k.hash == hash) {
                return Err(format!("line {line_no}: duplicate key hash"));
            }
            keys.push(ApiKey {
                name: name.to_owned(),
                scope,
                hash,
            });
        }
        if keys.is_empty() {
            return Err("no keys (every /v1 request would be refused)".to_owned());
        }
        Ok(Self(keys))
    }

    /// The stored key `presented` is, if any. Compares with every entry in constant time.
    pub fn lookup(&self, presented: &str) -> Option<&ApiKey> {
        let hash = crate::auth::peer_mac::sha256(presented.as_bytes());
        let mut found = None;
        for k in &self.0 {
            if crate::auth::constant_time_eq(&k.hash, &hash) {
                found = Some(k);
            }
        }
        found
    }
}

/// A fresh key and the keys-file line storing its hash: `(key, line)`.
pub fn generate(name: &str, scope: Scope) -> Result<(String, String), String> {
    if !valid_name(name) {
        return Err(format!(
            "name must be 1-{NAME_CHARS_MAX} of A-Z a-z 0-9 - _ . @"
        ));
    }
    let key = format!(
        "{KEY_PREFIX}{}",
        hex::encode(rand::random::<[u8; KEY_RANDOM_BYTES]>())
    );
    let hash = hex::encode(crate::auth::peer_mac::sha256(key.as_bytes()));
    Ok((key, format!("{name} {} {hash}", scope.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_with_their_scope() {
        let (k1, l1) = generate("reporting", Scope::Read).unwrap();
        let (k2, l2) = generate("payments", Scope::Write).unwrap();
        let keys = ApiKeys::parse(&format!("# keys\n{l1}\n\n{l2}  # trailing comment\n")).unwrap();
        assert!(!l1.contains(&k1), "the line stores a hash, not the key");
        assert_eq!(keys.lookup(&k1).map(|k| k.scope), Some(Scope::Read));
        assert_eq!(keys.lookup(&k2).map(|k| k.name.as_str()), Some("payments"));
        assert!(keys.lookup("rlk_00").is_none());
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write) && !Scope::Write.allows(Scope::Admin));
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let h = "ab".repeat(32);
        for (text, want) in [
            (format!("a read {h}\nb sudo {h}\n"), "line 2: scope"),
            ("# c\na read\n".to_owned(), "line 2: expected"),
            (format!("a read {h}\nb write abc\n"), "line 2: hash"),
            (
                format!("a read {h}\na write {}\n", "cd".repeat(32)),
                "line 2: duplicate name",
            ),
            (
                format!("a read {h}\nb write {h}\n"),
                "line 2: duplicate key hash",
            ),
            (format!("bad/name read {h}\n"), "line 1: name"),
            ("# nothing\n".to_owned(), "no keys"),
        ] {
            let e = ApiKeys::parse(&text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
