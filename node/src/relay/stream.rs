//! The JetStream side of the relay: the `LEDGER` stream's configuration, the server version
//! check, and reading the cursor (the stream's last sequence, which equals the last relayed
//! event_seq).

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// Name of the stream every committed ledger event is relayed to.
pub const STREAM_NAME: &str = "LEDGER";
/// Subject prefix; an event is published on `ledger.events.<type>`.
pub const SUBJECT_PREFIX: &str = "ledger.events";
/// Oldest nats-server with the stream settings we rely on (Debian's 2.9 ignores some silently).
pub const SERVER_VERSION_MIN: (u64, u64) = (2, 10);
/// Largest event message. Events are small (< 2 KiB); 1 MiB is NATS' default max payload.
const STREAM_MESSAGE_BYTES_MAX: i32 = 1 << 20;
/// Window in which JetStream remembers `Nats-Msg-Id`s to drop duplicate publishes.
const DUPLICATE_WINDOW_S: u64 = 120;

/// The stream configuration: file storage, explicit limits, delete and purge denied.
///
/// `bytes_max` bounds the stream (`--nats-stream-bytes-max`). JetStream refuses to create a
/// stream whose bound exceeds its file-store budget (a share of free disk), so the bound must
/// fit the server. `discard: new` makes a full stream refuse publishes (the relay backs off and
/// the lag metric grows) instead of silently dropping old events a rebuild would need.
pub fn config(bytes_max: i64) -> stream::Config {
    stream::Config {
        name: STREAM_NAME.into(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        description: Some("raftledger committed events; stream sequence == event_seq".into()),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        max_bytes: bytes_max,
        max_messages: -1,
        max_message_size: STREAM_MESSAGE_BYTES_MAX,
        max_age: Duration::ZERO,
        num_replicas: 1,
        duplicate_window: Duration::from_secs(DUPLICATE_WINDOW_S),
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        ..Default::default()
    }
}

/// Subject an event of `event_type` is published on.
pub fn subject(event_type: &str) -> String {
    format!("{SUBJECT_PREFIX}.{event_type}")
}

/// Parses `2.10.3` / `v2.11.0-beta` into (major, minor).
pub fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut it = v.trim().trim_start_matches('v').split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Errors unless the connected server is at least [`SERVER_VERSION_MIN`].
pub fn check_server_version(client: &async_nats::Client) -> anyhow::Result<String> {
    let v = client.server_info().version;
    let parsed = parse_version(&v).with_context(|| format!("unparsable server version {v:?}"))?;
    anyhow::ensure!(
        parsed >= SERVER_VERSION_MIN,
        "nats-server {v} is too old: need >= {}.{}",
        SERVER_VERSION_MIN.0,
        SERVER_VERSION_MIN.1
    );
    Ok(v)
}

/// Creates the stream if it is missing and returns a handle.
pub async fn ensure(js: &jetstream::Context, bytes_max: i64) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(config(bytes_max))
        .await
        .with_context(|| format!("get or create stream {STREAM_NAME} (max_bytes {bytes_max})"))
}

/// The cursor: the stream's last sequence (0 when empty) == the last relayed event_seq.
pub async fn cursor(stream: &stream::Stream) -> anyhow::Result<u64> {
    let info = stream.get_info().await.context("stream info")?;
    Ok(info.state.last_sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.10.3"), Some((2, 10)));
        assert_eq!(parse_version("v2.15.1"), Some((2, 15)));
        assert_eq!(parse_version("2.11.0-beta.1"), Some((2, 11)));
        assert_eq!(parse_version("junk"), None);
        assert!(parse_version("2.9.10").unwrap() < SERVER_VERSION_MIN);
        assert!(parse_version("2.10.0").unwrap() >= SERVER_VERSION_MIN);
        assert!(parse_version("3.0.0").unwrap() >= SERVER_VERSION_MIN);
    }
}
