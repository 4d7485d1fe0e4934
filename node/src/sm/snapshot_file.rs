//! Snapshot files: the `SnapshotFile` handle openraft and the network pass around, and the
//! on-disk format.
//!
//! ```text
//! file    := MAGIC record*            MAGIC = b"RLSNAP\0\x05" (8 bytes)
//! record  := frame (`frame`: len: u32 LE | crc32c(payload): u32 LE | payload)
//! payload := FORMAT_V1 | bincode(SnapRecord)
//! ```
//! Records: one `Header` first, then the ledger parts (`Accounts` in strictly increasing id
//! order, `Transfers` and `Idempotency` in any order, chunked), then the `StateHash` of the
//! parts (computed while they were written, checked while they are read, so neither side holds
//! the state in memory), then one `End` carrying the record count. A file without its `End`,
//! with a bad CRC, or with bytes after `End` is refused.
//!
//! Two kinds, told apart by the header's `history`:
//! - **local** (`history: Some`): what a node keeps for itself. The working set only
//!   (accounts, pending transfers); the finished history is the first `cold_end_bytes` of the
//!   node's cold history file and the event blocks up to `last_event_seq` in its sled, which
//!   the header references (with the history's digest) instead of copying. Its size and build
//!   time follow the working set, not the history.
//! - **full** (`history: None`): what travels to a follower that needs a snapshot. Also every
//!   finished transfer and idempotency entry, and the event blocks as raw sled rows (`Rows`),
//!   expanded from a local file and its node's history when a peer asks for it
//!   (`snapshot_send`).

use super::codec::{decode, encode, invalid_data};
use super::frame::{read_frame, write_frame, ReadFrame};
use super::shared::Shared;
use crate::raft_types::SnapshotMeta;
use ledger::{Account, Transfer};
use ledger::{HistoryDigest, IdempotencyEntry};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// First bytes of every snapshot file (name + layout version).
const SNAPSHOT_MAGIC: &[u8; 8] = b"RLSNAP\x00\x05";

/// Largest record accepted on read: bounds the allocation a corrupt length can cause. Writers
/// stay far below it (`ROWS_PER_RECORD_MAX` rows of at most a few KiB each).
const RECORD_LEN_MAX: usize = 256 * 1024 * 1024;

/// Items per chunked record: large enough to amortise framing, small enough to stream.
pub(crate) const ROWS_PER_RECORD_MAX: usize = 1024;

/// Nice value of the thread that expands a local snapshot for a peer (see `background`).
const SEND_NICE: i32 = 10;

/// I/O buffer of snapshot readers and writers.
const SNAPSHOT_BUFFER_BYTES: usize = 1 << 20;

/// A snapshot file on disk. openraft hands it between the state machine and the network; the
/// network streams the bytes of [`SnapshotFile::file_to_send`], and on the receiving node
/// writes them to `StateMachineStore::new_incoming_snapshot_path` and wraps that path with
/// [`SnapshotFile::open`].
#[derive(Clone)]
pub struct SnapshotFile {
    /// Where the file is.
    path: PathBuf,
    /// The store a local file belongs to (its history is there); None for a full file. Weak:
    /// a snapshot handle openraft keeps must not keep a closed store's database open.
    source: Option<Weak<Shared>>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("local", &self.source.is_some())
            .finish()
    }
}

impl PartialEq for SnapshotFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for SnapshotFile {}

impl SnapshotFile {
    /// Wraps an existing snapshot file. Only checks that it is a regular file; the contents are
    /// verified (magic, CRCs, meta) by `install_snapshot`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !std::fs::metadata(&path)?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a file", path.display()),
            ));
        }
        Ok(Self { path, source: None })
    }

    /// Wraps the local snapshot file `path` of the store `source`.
    pub(crate) fn local(path: impl AsRef<Path>, source: &Arc<Shared>) -> io::Result<Self> {
        let file = Self::open(path)?;
        Ok(Self {
            source: Some(Arc::downgrade(source)),
            ..file
        })
    }

    /// The file to stream to a peer: a full file, expanded (once per snapshot, on a blocking
    /// thread at low priority) from a local file and its store's history.
    pub async fn file_to_send(&self) -> io::Result<PathBuf> {
        let Some(source) = &self.source else {
            return Ok(self.path.clone());
        };
        let source = source
            .upgrade()
            .ok_or_else(|| io::Error::other("the store of this snapshot is closed"))?;
        let path = self.path.clone();
        let execution = source.execution;
        let expand = move || super::snapshot_send::full_file(&source, &path);
        execution
            .background("snapshot-expand", SEND_NICE, expand)
            .await
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn size_bytes(&self) -> io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }
}

/// Which history tree a `Rows` record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RowTree {
    /// `events` (the only history table a full snapshot carries; installs rebuild the postings
    /// pages from it).
    Events,
}

/// What the snapshot describes; the first record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapHeader {
    /// openraft meta (last log id, membership).
    pub(crate) meta: SnapshotMeta,
    /// Ledger: last event sequence.
    pub(crate) last_event_seq: u64,
    /// Ledger: last effective timestamp.
    pub(crate) last_timestamp_us: u64,
    /// Ledger: running applied hash.
    pub(crate) applied_hash: [u8; 32],
    /// A local file's reference to the history it leaves on disk; None in a full file.
    pub(crate) history: Option<HistoryRef>,
}

/// The finished history a local snapshot file relies on instead of holding it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HistoryRef {
    /// The cold history file's first bytes that hold it (every finished transfer and
    /// idempotency entry up to the snapshot, each once, nothing later).
    pub(crate) cold_end_bytes: u64,
    /// Their multiset digest (part of the state hash).
    pub(crate) digest: HistoryDigest,
}

/// One record of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SnapRecord {
    /// First record.
    Header(SnapHeader),
    /// A chunk of accounts.
    Accounts(Vec<Account>),
    /// A chunk of transfers.
    Transfers(Vec<Transfer>),
    /// A chunk of the idempotency table.
    Idempotency(Vec<(String, IdempotencyEntry)>),
    /// A chunk of raw (key, value) rows of a history tree, values as stored (versioned).
    Rows {
        /// Target tree.
        tree: RowTree,
        /// Rows in key order.
        rows: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// The full state hash (`ledger::StateDigest`) of the ledger parts; after them.
    StateHash([u8; 32]),
    /// Last record: how many records precede it.
    End {
        /// Count of records before this one (header included).
        records: u64,
    },
}

/// Writes records to a snapshot file.
pub(crate) struct RecordWriter {
    /// Buffered file.
    out: BufWriter<File>,
    /// Records written so far.
    records: u64,
}

impl RecordWriter {
    /// Creates `path` (which must not exist) and writes the magic.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(SNAPSHOT_BUFFER_BYTES, file);
        out.write_all(SNAPSHOT_MAGIC)?;
        Ok(Self { out, records: 0 })
    }

    /// Appends one framed record.
    pub(crate) fn write(&mut self, record: &SnapRecord) -> io::Result<()> {
        let payload = encode(record)?;
        write_frame(&mut self.out, &payload, RECORD_LEN_MAX)?;
        self.records += 1;
        Ok(())
    }

    /// Writes `items` as records of at most `ROWS_PER_RECORD_MAX` items each, passing each to
    /// `visit` first.
    pub(crate) fn write_chunks<T>(
        &mut self,
        items: impl Iterator<Item = T>,
        mut visit: impl FnMut(&T) -> io::Result<()>,
        record: impl Fn(Vec<T>) -> SnapRecord,
    ) -> io::Result<()> {
        let mut chunk = Vec::with_capacity(ROWS_PER_RECORD_MAX);
        for item in items {
            visit(&item)?;
            chunk.push(item);
            if chunk.len() == ROWS_PER_RECORD_MAX {
                self.write(&record(std::mem::take(&mut chunk)))?;
            }
        }
        if !chunk.is_empty() {
            self.write(&record(chunk))?;
        }
        Ok(())
    }

    /// Writes the rows of a sled iterator as `Rows` records of `tree`.
    pub(crate) fn write_rows(
        &mut self,
        tree: RowTree,
        rows: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> io::Result<()> {
        let mut kept = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(super::codec::sled_err)?;
            kept.push((k.to_vec(), v.to_vec()));
            if kept.len() == ROWS_PER_RECORD_MAX {
                let rows = std::mem::take(&mut kept);
                self.write(&SnapRecord::Rows { tree, rows })?;
            }
        }
        if !kept.is_empty() {
            self.write(&SnapRecord::Rows { tree, rows: kept })?;
        }
        Ok(())
    }

    /// Writes `End`, flushes and fsyncs the file.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        let end = SnapRecord::End {
            records: self.records,
        };
        self.write(&end)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// The header of the snapshot file at `path` (its first record).
pub(crate) fn read_header(path: &Path) -> io::Result<SnapHeader> {
    match RecordReader::open(path)?.next_record()? {
        Some(SnapRecord::Header(h)) => Ok(h),
        _ => Err(invalid_data(format!(
            "snapshot {} does not start with a header",
            path.display()
        ))),
    }
}

/// Reads and verifies records of a snapshot file.
pub(crate) struct RecordReader {
    /// Buffered file.
    inp: BufReader<File>,
    /// Records read so far (excluding `End`).
    records: u64,
    /// Set once `End` was read and verified.
    done: bool,
}

impl RecordReader {
    /// Opens `path` and checks the magic.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let mut inp = BufReader::with_capacity(SNAPSHOT_BUFFER_BYTES, File::open(path)?);
        let mut magic = [0u8; 8];
        inp.read_exact(&mut magic)
            .map_err(|e| invalid_data(format!("snapshot {}: no magic: {e}", path.display())))?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(invalid_data(format!(
                "{} is not a snapshot file",
                path.display()
            )));
        }
        Ok(Self {
            inp,
            records: 0,
            done: false,
        })
    }

    /// The next record before `End`, or None after a verified `End` (right count, no trailing
    /// bytes).
    pub(crate) fn next_record(&mut self) -> io::Result<Option<SnapRecord>> {
        if self.done {
            return Ok(None);
        }
        let payload = match read_frame(&mut self.inp, RECORD_LEN_MAX)? {
            ReadFrame::Payload(payload) => payload,
            ReadFrame::End => {
                let msg = "snapshot truncated before its end record".to_owned();
                return Err(invalid_data(msg));
            }
            ReadFrame::Damaged(why) => {
                let msg = format!("snapshot record {}: {why}", self.records);
                return Err(invalid_data(msg));
            }
        };
        match decode::<SnapRecord>(&payload)? {
            SnapRecord::End { records } => {
                if records != self.records {
                    return Err(invalid_data(format!(
                        "snapshot end record counts {records} records, read {}",
                        self.records
                    )));
                }
                let mut probe = [0u8; 1];
                if self.inp.read(&mut probe)? != 0 {
                    return Err(invalid_data(
                        "bytes after the snapshot end record".to_owned(),
                    ));
                }
                self.done = true;
                Ok(None)
            }
            record => {
                self.records += 1;
                Ok(Some(record))
            }
        }
    }
}
