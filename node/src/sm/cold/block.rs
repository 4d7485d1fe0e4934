//! Compressed blocks of cold records: the payload of every frame of the cold history file, and
//! the locators the index runs store for the records inside them.
//!
//! ```text
//! payload := BLOCK_FORMAT | raw_len: u32 LE | zstd(raw)
//! raw     := (len: u32 LE | FORMAT_V1 | bincode(ColdRecord))*      (1..=BLOCK_RECORDS_MAX)
//! locator := frame offset << SLOT_BITS | slot (the record's position in its block)
//! ```
//!
//! Records of one append are alike (ids, accounts and results differ in a few characters), so
//! a block of them compresses several times over; a lookup decompresses the one block its
//! locator names (tens of microseconds), which only retries of old ids and bloom false positives
//! pay.

use super::super::codec::{invalid_data, pack_into, unpack};
use std::io;

/// Format byte of a block payload (record payloads start with their own `FORMAT_V1`).
const BLOCK_FORMAT: u8 = 2;

/// Bits of a locator naming the record within its block.
const SLOT_BITS: u32 = 12;

/// Most records in one block.
pub(super) const BLOCK_RECORDS_MAX: usize = 1 << SLOT_BITS;

/// Raw bytes after which a block is closed (one record may take it beyond).
pub(super) const BLOCK_RAW_BYTES: usize = 64 << 10;

/// zstd level: the fastest, since blocks are compressed beside the apply path.
const ZSTD_LEVEL: i32 = 1;

/// True when a frame's payload was written in another format than a block (by another version
/// of this code): never a torn write, whose crc would not match.
pub(super) fn is_foreign(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| *b != BLOCK_FORMAT)
}

/// The locator of record `slot` of the block framed at `frame_offset`.
pub(super) fn locator(frame_offset: u64, slot: usize) -> u64 {
    debug_assert!(slot < BLOCK_RECORDS_MAX && frame_offset < 1 << (64 - SLOT_BITS));
    frame_offset << SLOT_BITS | slot as u64
}

/// The frame offset and slot a locator names.
pub(super) fn split(locator: u64) -> (u64, usize) {
    (
        locator >> SLOT_BITS,
        (locator & ((1 << SLOT_BITS) - 1)) as usize,
    )
}

/// A block being filled: the raw bytes of its records.
#[derive(Default)]
pub(super) struct BlockWriter {
    raw: Vec<u8>,
    count: usize,
}

impl BlockWriter {
    /// Adds an encoded record; returns its slot.
    pub(super) fn push(&mut self, record: &[u8]) -> io::Result<usize> {
        let len = u32::try_from(record.len())
            .map_err(|_| invalid_data(format!("cold record of {} bytes", record.len())))?;
        self.raw.extend_from_slice(&len.to_le_bytes());
        self.raw.extend_from_slice(record);
        self.count += 1;
        Ok(self.count - 1)
    }

    /// True when the block holds no record.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when the block must be closed before another record is added.
    pub(super) fn is_full(&self) -> bool {
        self.count >= BLOCK_RECORDS_MAX || self.raw.len() >= BLOCK_RAW_BYTES
    }

    /// The payload of the block, which is emptied for the next one.
    pub(super) fn finish(&mut self) -> io::Result<Vec<u8>> {
        let mut payload = vec![BLOCK_FORMAT];
        pack_into(&self.raw, ZSTD_LEVEL, &mut payload)?;
        self.raw.clear();
        self.count = 0;
        Ok(payload)
    }
}

/// A decompressed block.
pub(super) struct Block {
    raw: Vec<u8>,
}

impl Block {
    /// Decompresses a frame's payload; refuses another format or a wrong length.
    pub(super) fn open(payload: &[u8]) -> io::Result<Self> {
        let Some((&BLOCK_FORMAT, rest)) = payload.split_first() else {
            return Err(invalid_data("not a cold record block".to_owned()));
        };
        Ok(Self { raw: unpack(rest)? })
    }

    /// The encoded records, in slot order; a record cut short is an error.
    pub(super) fn records(&self) -> impl Iterator<Item = io::Result<&[u8]>> + '_ {
        let mut rest = self.raw.as_slice();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                rest = &[];
                return Some(Err(invalid_data(
                    "cold block: a record cut short".to_owned(),
                )));
            };
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                rest = &[];
                return Some(Err(invalid_data(
                    "cold block: a record cut short".to_owned(),
                )));
            }
            let (record, tail) = tail.split_at(len);
            rest = tail;
            Some(Ok(record))
        })
    }

    /// The encoded record in `slot`.
    pub(super) fn record(&self, slot: usize) -> io::Result<&[u8]> {
        self.records()
            .nth(slot)
            .unwrap_or_else(|| Err(invalid_data(format!("cold block has no record {slot}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_by_slot_and_in_order() {
        let mut w = BlockWriter::default();
        let records: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("record {i} of a block").into_bytes())
            .collect();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(w.push(r).unwrap(), i);
        }
        let payload = w.finish().unwrap();
        assert!(w.is_empty());
        assert!(payload.len() < records.iter().map(Vec::len).sum::<usize>() / 2);
        let block = Block::open(&payload).unwrap();
        let back: Vec<&[u8]> = block.records().map(Result::unwrap).collect();
        assert_eq!(back, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(block.record(299).unwrap(), records[299].as_slice());
        assert!(block.record(300).is_err());
    }

    #[test]
    fn locators_split_back_and_keep_file_order() {
        let a = locator(1 << 40, BLOCK_RECORDS_MAX - 1);
        assert_eq!(split(a), (1 << 40, BLOCK_RECORDS_MAX - 1));
        assert!(locator(8, BLOCK_RECORDS_MAX - 1) < locator(9, 0));
    }

    #[test]
    fn damaged_or_foreign_payloads_are_refused() {
        let mut w = BlockWriter::default();
        w.push(b"one").unwrap();
        let mut payload = w.finish().unwrap();
        assert!(Block::open(&payload[..3]).is_err());
        payload[0] = 1;
        assert!(Block::open(&payload).is_err());
        payload[0] = BLOCK_FORMAT;
        payload[1] ^= 0x40;
        assert!(Block::open(&payload).is_err());
    }
}
