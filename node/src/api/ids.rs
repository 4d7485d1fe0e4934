//! Command ids: the ones a client may choose, and the ones the server derives.
//!
//! The server derives ids for commands that have no natural one: `post:{transfer}` and
//! `void:{transfer}` (default keys of `/v1/transfers/{id}/post|void`), `freeze:`, `unfreeze:`
//! and `close:{account}:{uuid}` (status changes), `batch:{n}:{hash}` (a batch without an id) and
//! `tick` (the leader's expiry sweep). A client could otherwise pre-claim one of them (send a
//! transfer with id `post:t1`, and the later `POST /v1/transfers/t1/post` would be refused as
//! a reused key), so client ids — body ids, `Idempotency-Key` headers, batch items, account ids
//! (an open's command id is its account id) — with a reserved prefix, or equal to `tick`, are a
//! 400 `reserved_id`.

use super::error::ApiError;
use ledger::types::validate_command_id;
use ledger::Command;

/// Prefixes of server-derived ids; no client id may start with one.
pub const RESERVED_PREFIXES: [&str; 6] =
    ["post:", "void:", "freeze:", "unfreeze:", "close:", "batch:"];
/// The id of the leader's expiry sweep (a `Tick` command).
pub const TICK_ID: &str = "tick";

/// True when `id` is one the server derives (so a client may not use it).
pub fn is_reserved(id: &str) -> bool {
    id == TICK_ID || RESERVED_PREFIXES.iter().any(|p| id.starts_with(p))
}

/// Validates a client-chosen command id: well-formed (400 `invalid_id`) and not reserved
/// (400 `reserved_id`).
pub fn client_id(id: &str) -> Result<(), ApiError> {
    validate_command_id(id)?;
    if is_reserved(id) {
        return Err(ApiError::bad_request(
            "reserved_id",
            format!(
                "id {id:?} is reserved for ids the server derives (prefixes {}, or `{TICK_ID}`)",
                RESERVED_PREFIXES.join(" ")
            ),
        ));
    }
    Ok(())
}

/// Default id of `POST /v1/transfers/{id}/post`.
pub fn post_id(transfer: &str) -> String {
    format!("post:{transfer}")
}

/// Default id of `POST /v1/transfers/{id}/void`.
pub fn void_id(transfer: &str) -> String {
    format!("void:{transfer}")
}

/// A fresh id for a status change (`verb` is `freeze`, `unfreeze` or `close`).
pub fn status_id(verb: &str, account: &str) -> String {
    format!("{verb}:{account}:{}", uuid::Uuid::new_v4())
}

/// The id of a batch sent without one: derived from the inner ids, so a retry is idempotent.
pub fn batch_id(commands: &[Command]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in commands {
        h.update(c.id.as_bytes());
        h.update([0u8]);
    }
    format!(
        "batch:{}:{}",
        commands.len(),
        hex::encode(&h.finalize()[..12])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_reserved() {
        let derived = [
            post_id("t1"),
            void_id("t1"),
            status_id("freeze", "a"),
            status_id("unfreeze", "a"),
            status_id("close", "a"),
            batch_id(&[]),
            TICK_ID.to_owned(),
        ];
        for id in derived {
            assert!(is_reserved(&id), "{id}");
            assert!(client_id(&id).is_err(), "{id}");
        }
        for ok in ["t1", "ticket", "tick-1", "posted:1", "a:post:b", "Post:1"] {
            assert!(client_id(ok).is_ok(), "{ok}");
        }
    }
}
