//! Reading the cold history file back frame by frame: the unindexed tail an open or a cut
//! indexes (where the intact frames end, their records' index entries), and the record
//! streams of scans and of a full snapshot's expansion.

use super::block::{self, Block};
use super::chain::FRAME_BYTES_MAX;
use super::record::{key_hash, ColdRecord, Kind};
use super::run::FileAt;
use super::IO_BUFFER_BYTES;
use crate::sm::codec::{decode, invalid_data};
use crate::sm::frame::{read_frame, ReadFrame, FRAME_HEAD_BYTES};
use std::fs::File;
use std::io::{self, BufReader, Read};

/// The intact frames of `file` from `start` on: where they end (the first torn, zeroed or
/// corrupt frame, or the end of the file), their records' index entries (hash, locator) and
/// the offset of the last frame (None when there is none).
pub(super) fn scan_tail(file: &File, start: u64) -> io::Result<Tail> {
    let mut reader = BufReader::with_capacity(
        IO_BUFFER_BYTES,
        FileAt {
            file,
            offset: start,
        },
    );
    let mut tail = Tail {
        end: start,
        entries: Vec::new(),
        last: None,
    };
    while let ReadFrame::Payload(payload) = read_frame(&mut reader, FRAME_BYTES_MAX)? {
        if block::is_foreign(&payload) {
            return Err(invalid_data(format!(
                "the cold history has a frame at {} in another format: written by another \
                 version; wipe the node's data directory and let it rejoin",
                tail.end
            )));
        }
        let Ok(entries) = block_entries(&payload, tail.end) else {
            break;
        };
        tail.entries.extend(entries);
        tail.last = Some(tail.end);
        tail.end += FRAME_HEAD_BYTES + payload.len() as u64;
    }
    Ok(tail)
}

/// What `scan_tail` found.
pub(super) struct Tail {
    pub(super) end: u64,
    pub(super) entries: Vec<(u64, u64)>,
    pub(super) last: Option<u64>,
}

/// The index entries (hash, locator) of the records in the block framed at `offset`.
pub(super) fn block_entries(payload: &[u8], offset: u64) -> io::Result<Vec<(u64, u64)>> {
    let block = Block::open(payload)?;
    let mut entries = Vec::new();
    for (slot, bytes) in block.records().enumerate() {
        let record: ColdRecord = decode(bytes?)?;
        let (kind, id) = record.key();
        entries.push((key_hash(kind, id), block::locator(offset, slot)));
    }
    Ok(entries)
}

/// The records of the frames `reader` yields, in file order, those of other kinds than `kind`
/// (when given) skipped undecoded; a damaged frame or block is an error.
pub(super) fn frame_records<R: Read>(
    mut reader: R,
    kind: Option<Kind>,
) -> impl Iterator<Item = io::Result<ColdRecord>> {
    let mut pending = std::collections::VecDeque::new();
    std::iter::from_fn(move || loop {
        if let Some(record) = pending.pop_front() {
            return Some(record);
        }
        let payload = match read_frame(&mut reader, FRAME_BYTES_MAX) {
            Ok(ReadFrame::Payload(payload)) => payload,
            Ok(ReadFrame::End) => return None,
            Ok(ReadFrame::Damaged(why)) => return Some(Err(invalid_data(why))),
            Err(e) => return Some(Err(e)),
        };
        let block = match Block::open(&payload) {
            Ok(block) => block,
            Err(e) => return Some(Err(e)),
        };
        for bytes in block.records() {
            let wanted = |b: &&[u8]| kind.is_none_or(|k| Kind::of_payload(b) == Some(k));
            match bytes {
                Ok(b) if !wanted(&b) => {}
                Ok(b) => pending.push_back(decode(b)),
                Err(e) => pending.push_back(Err(e)),
            }
        }
    })
}
