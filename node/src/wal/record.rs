//! Record framing: how one WAL record is laid out on disk, encoded and checked.
//!
//! ```text
//! frame   = [len: u32 LE][crc: u32 LE = crc32c(payload)][payload: len bytes]
//! payload = [version: u8][kind: u8][group_seq: u64 LE][flags: u8][body]
//! ```
//!
//! - `version` is [`FORMAT_VERSION`]; any other value with a valid CRC is a format this build does
//!   not understand, never a torn write.
//! - `group_seq` numbers the group-commit round (one `fdatasync`) that wrote the record, and bit 0
//!   of `flags` marks the last record of its group. Recovery uses both to tell a torn final group
//!   (unsynced, safe to drop) from damage to data that was already synced (refuse to start).
//! - `body` is bincode 2 (serde API, standard config) of the record's value.
//!
//! A zero `len` never starts a record (a payload is at least [`PAYLOAD_HEADER_BYTES`] long), so
//! the zero fill of a preallocated segment reads as "no more records".

use crate::raft_types::{Entry, LogId, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;

/// On-disk format version written in every payload.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Bytes of `[len][crc]` before each payload.
pub(crate) const FRAME_HEADER_BYTES: u64 = 8;

/// Bytes of `[version][kind][group_seq][flags]` at the start of each payload.
pub(crate) const PAYLOAD_HEADER_BYTES: usize = 11;

/// Largest payload accepted, on write and on read. An entry is one batch of ledger commands
/// (bounded by `ledger::BATCH_COMMANDS_MAX`), far below this; the bound keeps a corrupt length
/// field from making recovery allocate or trust gigabytes.
pub(crate) const PAYLOAD_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// `flags` bit: this record is the last of its group-commit round.
const FLAG_LAST_IN_GROUP: u8 = 1;

/// What a record holds. The discriminant is the on-disk `kind` byte: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// First record of every segment: the segment's sequence number.
    SegmentStart = 1,
    /// A Raft log entry.
    Entry = 2,
    /// The vote.
    Vote = 3,
    /// The committed log id (or none).
    Committed = 4,
    /// Drop every entry after this log id (none: drop all).
    TruncateAfter = 5,
    /// Every entry up to and including this log id is purged.
    Purge = 6,
    /// No value: closes a commit round that has no other record to carry the last-in-round
    /// flag (at open, after a torn or unsynced tail; or a sync barrier after unsynced records).
    RoundEnd = 7,
}

impl RecordKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::SegmentStart,
            2 => Self::Entry,
            3 => Self::Vote,
            4 => Self::Committed,
            5 => Self::TruncateAfter,
            6 => Self::Purge,
            7 => Self::RoundEnd,
            _ => return None,
        })
    }
}

/// Group-commit metadata carried by every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    /// Sequence number of the group-commit round that wrote the record.
    pub group_seq: u64,
    /// Whether the record is the last one of its round.
    pub last_in_group: bool,
}

/// A record encoded and ready to be framed (the writer adds the group metadata and the CRC).
#[derive(Debug, Clone)]
pub(crate) struct EncodedRecord {
    /// What the body holds.
    pub kind: RecordKind,
    /// bincode of the value.
    pub body: Vec<u8>,
}

fn encode<T: Serialize>(kind: RecordKind, value: &T) -> io::Result<EncodedRecord> {
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("encode {kind:?} record: {e}"),
        )
    })?;
    let record = EncodedRecord { kind, body };
    if record.payload_len() > PAYLOAD_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{kind:?} record of {} bytes exceeds {PAYLOAD_BYTES_MAX}",
                record.payload_len()
            ),
        ));
    }
    Ok(record)
}

impl EncodedRecord {
    /// The record opening segment `seq`.
    pub fn segment_start(seq: u64) -> io::Result<Self> {
        encode(RecordKind::SegmentStart, &seq)
    }

    /// A log entry.
    pub fn entry(entry: &Entry) -> io::Result<Self> {
        encode(RecordKind::Entry, entry)
    }

    /// The vote.
    pub fn vote(vote: &Vote) -> io::Result<Self> {
        encode(RecordKind::Vote, vote)
    }

    /// The committed log id.
    pub fn committed(committed: &Option<LogId>) -> io::Result<Self> {
        encode(RecordKind::Committed, committed)
    }

    /// Truncation after `last` (exclusive).
    pub fn truncate_after(last: &Option<LogId>) -> io::Result<Self> {
        encode(RecordKind::TruncateAfter, last)
    }

    /// Purge up to `upto` (inclusive).
    pub fn purge(upto: &LogId) -> io::Result<Self> {
        encode(RecordKind::Purge, upto)
    }

    /// The end-of-round marker.
    pub fn round_end() -> io::Result<Self> {
        encode(RecordKind::RoundEnd, &())
    }

    fn payload_len(&self) -> u64 {
        (PAYLOAD_HEADER_BYTES + self.body.len()) as u64
    }

    /// Bytes this record takes on disk, header included.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_BYTES + self.payload_len()
    }
}

/// Appends the frame of `record` (with `meta`) to `out`.
pub(crate) fn write_frame(out: &mut Vec<u8>, record: &EncodedRecord, meta: FrameMeta) {
    let len = u32::try_from(record.payload_len()).expect("payload bounded by PAYLOAD_BYTES_MAX");
    let flags = if meta.last_in_group {
        FLAG_LAST_IN_GROUP
    } else {
        0
    };
    let mut head = [0u8; PAYLOAD_HEADER_BYTES];
    head[0] = FORMAT_VERSION;
    head[1] = record.kind as u8;
    head[2..10].copy_from_slice(&meta.group_seq.to_le_bytes());
    head[10] = flags;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), &record.body);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&record.body);
}

/// The result of reading a frame at some offset.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// A whole frame with a valid CRC.
    Frame {
        /// Group-commit metadata.
        meta: FrameMeta,
        /// What the body holds.
        kind: RecordKind,
        /// The encoded value.
        body: &'a [u8],
        /// Bytes of the whole frame.
        frame_len: u64,
    },
    /// Zero header: no record starts here.
    End,
    /// Not a valid frame (short, impossible length, CRC mismatch): torn or damaged bytes.
    Invalid(String),
    /// A valid CRC around a payload this build cannot read: never a torn write.
    Unsupported(String),
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads the frame at the start of `buf`.
pub(crate) fn parse_frame(buf: &[u8]) -> Parsed<'_> {
    let header = FRAME_HEADER_BYTES as usize;
    if buf.len() < header {
        return if buf.iter().all(|b| *b == 0) {
            Parsed::End
        } else {
            Parsed::Invalid(format!("short frame header ({} bytes)", buf.len()))
        };
    }
    let len = u64::from(u32_at(buf, 0));
    let crc = u32_at(buf, 4);
    if len == 0 {
        return if crc == 0 {
            Parsed::End
        } else {
            Parsed::Invalid("zero length with a crc".into())
        };
    }
    if len < PAYLOAD_HEADER_BYTES as u64 || len > PAYLOAD_BYTES_MAX {
        return Parsed::Invalid(format!("impossible payload length {len}"));
    }
    let end = header + len as usize;
    if end > buf.len() {
        return Parsed::Invalid(format!(
            "frame of {len} bytes runs past the end of the segment"
        ));
    }
    let payload = &buf[header..end];
    if crc32c::crc32c(payload) != crc {
        return Parsed::Invalid("crc mismatch".into());
    }
    if payload[0] != FORMAT_VERSION {
        return Parsed::Unsupported(format!(
            "format version {} (expected {FORMAT_VERSION})",
            payload[0]
        ));
    }
    let Some(kind) = RecordKind::from_byte(payload[1]) else {
        return Parsed::Unsupported(format!("unknown record kind {}", payload[1]));
    };
    let group_seq = u64::from_le_bytes(payload[2..10].try_into().expect("8 bytes"));
    let meta = FrameMeta {
        group_seq,
        last_in_group: payload[10] & FLAG_LAST_IN_GROUP != 0,
    };
    Parsed::Frame {
        meta,
        kind,
        body: &payload[PAYLOAD_HEADER_BYTES..],
        frame_len: end as u64,
    }
}

/// A record as recovery replays it. Entries carry only their log id: the body is read again
/// (and checked again) when the entry itself is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// Opens segment `seq`.
    SegmentStart(u64),
    /// An entry with this log id.
    Entry(LogId),
    /// The vote.
    Vote(Vote),
    /// The committed log id.
    Committed(Option<LogId>),
    /// Truncation after this log id.
    TruncateAfter(Option<LogId>),
    /// Purge up to this log id.
    Purge(LogId),
    /// End of a commit round.
    RoundEnd,
}

fn decode<T: DeserializeOwned>(kind: RecordKind, body: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(value, _read)| value)
        .map_err(|e| format!("decode {kind:?} record: {e}"))
}

/// Decodes the value of a frame for replay (an entry's body is decoded only up to its log id,
/// which bincode writes first because `log_id` is the entry's first field).
pub(crate) fn decode_record(kind: RecordKind, body: &[u8]) -> Result<Record, String> {
    Ok(match kind {
        RecordKind::SegmentStart => Record::SegmentStart(decode(kind, body)?),
        RecordKind::Entry => Record::Entry(decode(kind, body)?),
        RecordKind::Vote => Record::Vote(decode(kind, body)?),
        RecordKind::Committed => Record::Committed(decode(kind, body)?),
        RecordKind::TruncateAfter => Record::TruncateAfter(decode(kind, body)?),
        RecordKind::Purge => Record::Purge(decode(kind, body)?),
        RecordKind::RoundEnd => {
            decode::<()>(kind, body)?;
            Record::RoundEnd
        }
    })
}

/// Decodes a whole entry from the frame at the start of `buf` (a read of one indexed record).
pub(crate) fn decode_entry_frame(buf: &[u8]) -> Result<Entry, String> {
    match parse_frame(buf) {
        Parsed::Frame {
            kind: RecordKind::Entry,
            body,
            ..
        } => decode(RecordKind::Entry, body),
        Parsed::Frame { kind, .. } => Err(format!("expected an entry record, found {kind:?}")),
        Parsed::End => Err("expected an entry record, found zeros".into()),
        Parsed::Invalid(why) | Parsed::Unsupported(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::TypeConfig;

    fn framed(record: &EncodedRecord, group_seq: u64, last: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(
            &mut out,
            record,
            FrameMeta {
                group_seq,
                last_in_group: last,
            },
        );
        out
    }

    #[test]
    fn entry_round_trips_and_replay_sees_only_its_log_id() {
        let entry = openraft::testing::blank_ent::<TypeConfig>(3, 1, 42);
        let record = EncodedRecord::entry(&entry).unwrap();
        let buf = framed(&record, 7, true);
        assert_eq!(buf.len() as u64, record.frame_len());
        let Parsed::Frame {
            meta,
            kind,
            body,
            frame_len,
        } = parse_frame(&buf)
        else {
            panic!("expected a frame");
        };
        assert_eq!(
            meta,
            FrameMeta {
                group_seq: 7,
                last_in_group: true
            }
        );
        assert_eq!(frame_len, buf.len() as u64);
        assert_eq!(
            decode_record(kind, body).unwrap(),
            Record::Entry(entry.log_id)
        );
        assert_eq!(decode_entry_frame(&buf).unwrap(), entry);
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let buf = framed(&EncodedRecord::segment_start(9).unwrap(), 1, false);
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert!(
                !matches!(parse_frame(&bad), Parsed::Frame { .. }),
                "flip at byte {at} went unnoticed"
            );
        }
    }

    #[test]
    fn zeros_end_the_log_and_a_cut_frame_is_invalid() {
        assert!(matches!(parse_frame(&[0u8; 64]), Parsed::End));
        assert!(matches!(parse_frame(&[0u8; 3]), Parsed::End));
        let buf = framed(
            &EncodedRecord::purge(&openraft::testing::log_id::<TypeConfig>(1, 1, 5)).unwrap(),
            1,
            true,
        );
        assert!(matches!(
            parse_frame(&buf[..buf.len() - 1]),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse_frame(&buf[..5]), Parsed::Invalid(_)));
    }
}
