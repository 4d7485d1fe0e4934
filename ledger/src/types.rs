//! Validated identifiers and units: account ids, ISO 4217 currencies, leader-stamped time.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted account id, in bytes (1..64 of `[A-Za-z0-9._:-]`).
pub const ACCOUNT_ID_LEN_MAX: usize = 64;
/// Longest accepted command/transfer id (the idempotency key), in bytes.
pub const COMMAND_ID_LEN_MAX: usize = 128;
/// Longest accepted memo, in bytes.
pub const MEMO_LEN_MAX: usize = 512;
/// Longest accepted account metadata (canonical JSON text), in bytes.
pub const METADATA_LEN_MAX: usize = 4096;
/// Prefix of per-currency system accounts (`@world:USD`); clients cannot open these.
pub const SYSTEM_ACCOUNT_PREFIX: &str = "@world:";

/// Why a client-supplied value was refused before it reached the log (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The account id is empty, too long, or has a character outside `[A-Za-z0-9._:-]`.
    #[error("invalid account id {0:?}: 1..64 characters of [A-Za-z0-9._:-]")]
    AccountId(String),
    /// The currency is not three upper-case ASCII letters.
    #[error("invalid currency {0:?}: expected an ISO 4217 code such as USD")]
    Currency(String),
    /// Three upper-case letters, but not an active ISO 4217 code.
    #[error("unknown currency {0:?}: not an active ISO 4217 code")]
    UnknownCurrency(String),
    /// A command id (idempotency key) is empty, too long or not printable ASCII.
    #[error("invalid id {0:?}: 1..128 printable ASCII characters")]
    CommandId(String),
    /// Amount is zero or negative.
    #[error("amount must be positive, got {0}")]
    Amount(i64),
    /// A text field is over its limit.
    #[error("{field} is too long: {len} bytes, at most {max}")]
    TooLong {
        /// which field
        field: &'static str,
        /// its length in bytes
        len: usize,
        /// the limit in bytes
        max: usize,
    },
    /// Any other malformed field.
    #[error("{0}")]
    Other(String),
}

/// A client-chosen account id, validated: 1..64 bytes of `[A-Za-z0-9._:-]`.
/// System accounts (`@world:USD`) are built only by [`AccountId::system`].
///
/// Held inline (`CompactString`: ids of up to 24 bytes need no allocation), so the copies every
/// transfer, posting and event carries cost no allocation to make or to free; serialized as a
/// plain string, exactly like the `String` it replaced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(compact_str::CompactString);

impl AccountId {
    /// Validates a client-supplied account id.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = !s.is_empty()
            && s.len() <= ACCOUNT_ID_LEN_MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.into()))
        } else {
            Err(ValidationError::AccountId(s.to_owned()))
        }
    }

    /// The per-currency system account that deposits and withdrawals post against.
    pub fn system(currency: &Currency) -> Self {
        Self(compact_str::format_compact!(
            "{SYSTEM_ACCOUNT_PREFIX}{}",
            currency.as_str()
        ))
    }

    /// Parses either a client id or a system account id (`@world:USD`), for reads.
    pub fn parse_any(s: &str) -> Result<Self, ValidationError> {
        match s.strip_prefix(SYSTEM_ACCOUNT_PREFIX) {
            Some(cur) => Ok(Self::system(&Currency::parse(cur)?)),
            None => Self::parse(s),
        }
    }

    /// True for `@world:<currency>` accounts, which may go negative without limit.
    pub fn is_system(&self) -> bool {
        self.0.starts_with(SYSTEM_ACCOUNT_PREFIX)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217-shaped currency code: three upper-case ASCII letters. Serialized as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Currency([u8; 3]);

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        Self::parse(&s)
    }
}

impl Currency {
    /// Validates a currency code such as `USD`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(ValidationError::Currency(s.to_owned()))
        }
    }

    /// Validates the currency of a new account: an active ISO 4217 code (see `iso4217`).
    /// [`Currency::parse`] checks only the shape, so stored data never fails to decode.
    pub fn parse_active(s: &str) -> Result<Self, ValidationError> {
        let c = Self::parse(s)?;
        if crate::iso4217::is_active(s) {
            Ok(c)
        } else {
            Err(ValidationError::UnknownCurrency(s.to_owned()))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only upper-case ASCII is ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validates a command id / transfer id (the idempotency key).
pub fn validate_command_id(s: &str) -> Result<(), ValidationError> {
    let ok =
        !s.is_empty() && s.len() <= COMMAND_ID_LEN_MAX && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::CommandId(s.to_owned()))
    }
}

/// Leader-stamped wall-clock time in microseconds since the Unix epoch.
/// Replicas never read their own clocks: every time in the ledger comes from a command stamp.
pub type TimestampUs = u64;

#[cfg(test)]
mod tests {
    use super::*;

    /// Held inline or not, an id is encoded as the plain string it was before (every digest,
    /// snapshot and cold record depends on those bytes).
    #[test]
    fn an_account_id_encodes_as_its_string() {
        let long = "a".repeat(ACCOUNT_ID_LEN_MAX);
        for text in [
            "alice",
            "an-id-longer-than-twenty-four-bytes",
            long.as_str(),
        ] {
            let id = AccountId::parse(text).unwrap();
            let config = bincode::config::standard();
            let as_id = bincode::serde::encode_to_vec(&id, config).unwrap();
            assert_eq!(as_id, bincode::serde::encode_to_vec(text, config).unwrap());
            let (back, _): (AccountId, usize) =
                bincode::serde::decode_from_slice(&as_id, config).unwrap();
            assert_eq!(back, id);
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        }
        let system = AccountId::system(&Currency::parse("USD").unwrap());
        assert_eq!(system.as_str(), "@world:USD");
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("alice_01:eur-main.x").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("@world:USD").is_err());
        assert!(AccountId::parse(&"a".repeat(65)).is_err());
        assert!(AccountId::parse(&"a".repeat(64)).is_ok());
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(AccountId::system(&usd).as_str(), "@world:USD");
        assert!(AccountId::parse_any("@world:USD").unwrap().is_system());
    }

    #[test]
    fn currencies() {
        assert!(Currency::parse_active("EUR").is_ok());
        assert_eq!(
            Currency::parse_active("ABC"),
            Err(ValidationError::UnknownCurrency("ABC".into()))
        );
        assert_eq!(
            Currency::parse_active("abc"),
            Err(ValidationError::Currency("abc".into()))
        );
        assert!(
            Currency::parse("ABC").is_ok(),
            "stored data decodes by shape"
        );
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }
}
