//! `ColdStore`: the ledger's cold history — finished transfers and idempotency entries that
//! left memory — in one append-only file, `<dir>/history/records.bin`, with an in-memory index
//! from a 64-bit hash of each record's key to its offset.
//!
//! ```text
//! file   := frame*               (`frame`: len: u32 LE | crc32c(payload): u32 LE | payload)
//! payload:= FORMAT_V1 | bincode(ColdRecord)
//! ```
//!
//! Appends are sequential (no B-tree insert per record: random-key inserts into sled cost a
//! large share of a node's CPU, memory and disk) and happen off the apply path: a snapshot build
//! copies the sealed generations it captured (after its file is written, before its pointer),
//! and an install copies the finished records of the installed file. Every record is final (a
//! finished transfer never changes, an idempotency entry is written once); a record whose key
//! is already in the file is not appended again, so each key is in the file once.
//!
//! Durability: `sync` (fsync) runs before the snapshot pointer that relies on the records is
//! written (appends between snapshots are not synced: what a crash loses of them lies after
//! the last snapshot and is replayed from the log). Every sync covers all earlier appends, so
//! what survives a crash is a synced prefix and possibly some unsynced pages after it. On open
//! the file is scanned to rebuild the index and cut at the first torn, zeroed or corrupt frame. The file may hold records from beyond
//! the state the node restarts with (copied, snapshot not yet current); the ledger's horizon
//! hides them (see `ledger::tiers`).
//!
//! Memory: the index holds 16 bytes per record plus the hash table's slack; the records
//! themselves are read from the file (the OS page cache) on demand.

use super::codec::{decode, encode_into, invalid_data, FORMAT_V1};
use super::frame::{read_frame, write_frame, ReadFrame, FRAME_HEAD_BYTES};
use crate::wal::{create_dir_all_durable, RealFs};
use ledger::{ColdHistory, HistoryDigest, IdempotencyEntry, Sealed, Transfer, TransferStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// Name of the file inside the history directory.
const RECORDS_FILE: &str = "records.bin";

/// Largest frame accepted on read (a corrupt length must not allocate gigabytes).
const FRAME_BYTES_MAX: usize = 64 << 20;

/// Index entries inserted per hold of the index's write lock.
const INDEX_INSERTS_PER_LOCK: usize = 1024;

/// Buffer of the appender and of scans.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// One record of the cold history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ColdRecord {
    /// A finished transfer.
    Transfer(Transfer),
    /// An idempotency entry and its command id.
    Idempotency(String, IdempotencyEntry),
}

/// A record to append, borrowed (serialized exactly like the `ColdRecord` it decodes to, so
/// appending copies nothing but bytes).
#[derive(Serialize)]
enum ColdRecordRef<'a> {
    Transfer(&'a Transfer),
    Idempotency(&'a str, &'a IdempotencyEntry),
}

impl ColdRecordRef<'_> {
    fn add_to(&self, digest: &mut HistoryDigest) {
        match self {
            Self::Transfer(t) => digest.transfer(t),
            Self::Idempotency(id, e) => digest.idempotency(id, e),
        }
    }

    fn key(&self) -> (Kind, &str) {
        match self {
            Self::Transfer(t) => (Kind::Transfer, &t.id),
            Self::Idempotency(id, _) => (Kind::Idempotency, id),
        }
    }
}

/// Which key space a record's id belongs to (transfer and command ids may be equal).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Kind {
    Transfer,
    Idempotency,
}

impl Kind {
    /// The kind of an encoded record without decoding it: the byte after the format version is
    /// bincode's variant index of `ColdRecord` (one byte for small indexes).
    fn of_payload(payload: &[u8]) -> Option<Self> {
        match payload {
            [FORMAT_V1, 0, ..] => Some(Self::Transfer),
            [FORMAT_V1, 1, ..] => Some(Self::Idempotency),
            _ => None,
        }
    }
}

impl ColdRecord {
    fn key(&self) -> (Kind, &str) {
        match self {
            Self::Transfer(t) => (Kind::Transfer, &t.id),
            Self::Idempotency(id, _) => (Kind::Idempotency, id),
        }
    }
}

/// 64-bit hash of a record key (SipHash with fixed keys: the index is local, never shared).
fn key_hash(kind: Kind, id: &str) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    kind.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

/// Key hash -> offsets of the frames with that hash (almost always one).
#[derive(Default)]
struct Index {
    first: HashMap<u64, u64>,
    /// Further offsets of a hash shared by different keys.
    more: HashMap<u64, Vec<u64>>,
}

impl Index {
    fn insert(&mut self, hash: u64, offset: u64) {
        if let Some(prev) = self.first.insert(hash, offset) {
            self.first.insert(hash, prev);
            self.more.entry(hash).or_default().push(offset);
        }
    }

    fn offsets(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let more = self.more.get(&hash).into_iter().flatten().copied();
        self.first.get(&hash).copied().into_iter().chain(more)
    }

    fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }
}

/// The appender: the file's end and a buffer of frames not yet written.
struct Appender {
    out: BufWriter<File>,
    /// Offset the next frame gets.
    end: u64,
}

/// The cold history of one node.
pub(crate) struct ColdStore {
    /// Where the file is (scans open their own handle: a cloned one would share its offset).
    path: PathBuf,
    /// The file, for positioned reads (shared by readers; appends go through `appender`).
    file: File,
    appender: Mutex<Appender>,
    index: RwLock<Index>,
    /// Length of the file up to which frames are written (readable); scans stop here.
    written: AtomicU64,
    /// Digest of every record in the file.
    digest: Mutex<HistoryDigest>,
}

/// A read that failed: the history on disk is unreadable, which no replica can answer around.
fn fail(what: &str, e: io::Error) -> ! {
    panic!("cold history: cannot read {what}: {e} (the node stops; restore it from a peer)")
}

impl ColdStore {
    /// Opens (creating) `dir/records.bin`, rebuilds the index and cuts off a torn tail.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        create_dir_all_durable(&RealFs, dir)?;
        let path = dir.join(RECORDS_FILE);
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if created {
            super::meta::sync_dir(dir)?;
        }
        let (index, end, digest) = scan_index(&file, u64::MAX)?;
        if end < file.metadata()?.len() {
            tracing::warn!(kept = end, "cold history: cutting off a torn tail");
            file.set_len(end)?;
            file.sync_all()?;
        }
        let out = BufWriter::with_capacity(IO_BUFFER_BYTES, file.try_clone()?);
        Ok(Self {
            path,
            file,
            appender: Mutex::new(Appender { out, end }),
            index: RwLock::new(index),
            written: AtomicU64::new(end),
            digest: Mutex::new(digest),
        })
    }

    /// Cuts the file to its first `len_bytes` (records appended after the snapshot a restart
    /// resumes at; the log replays them) and syncs it.
    pub(crate) fn truncate_to(&self, len_bytes: u64) -> io::Result<()> {
        let mut appender = self.appender.lock().expect("cold appender lock");
        if len_bytes > appender.end {
            return Err(invalid_data(format!(
                "cold history has {} bytes, the snapshot relies on {len_bytes}",
                appender.end
            )));
        }
        appender.out.flush()?;
        let file = appender.out.get_ref();
        file.set_len(len_bytes)?;
        file.sync_all()?;
        let (index, end, digest) = scan_index(file, len_bytes)?;
        appender.end = end;
        self.written.store(end, Ordering::Release);
        *self.index.write().expect("cold index lock") = index;
        *self.digest.lock().expect("cold digest lock") = digest;
        Ok(())
    }

    /// Bytes of the file holding records.
    pub(crate) fn end_bytes(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Digest of every record in the file.
    pub(crate) fn digest(&self) -> HistoryDigest {
        *self.digest.lock().expect("cold digest lock")
    }

    /// Records below `len_bytes` may be reorganised (a snapshot relies on them).
    pub(crate) fn set_stable_len(&self, _len_bytes: u64) {}

    /// The records in the file's first `len_bytes`, in file order.
    pub(crate) fn records_before(
        &self,
        len_bytes: u64,
    ) -> io::Result<impl Iterator<Item = io::Result<ColdRecord>>> {
        let file = File::open(&self.path)?;
        let mut reader = BufReader::with_capacity(IO_BUFFER_BYTES, file.take(len_bytes));
        Ok(std::iter::from_fn(move || {
            match read_frame(&mut reader, FRAME_BYTES_MAX) {
                Ok(ReadFrame::Payload(payload)) => Some(decode(&payload)),
                Ok(ReadFrame::End) => None,
                Ok(ReadFrame::Damaged(why)) => {
                    Some(Err(invalid_data(format!("cold record: {why}"))))
                }
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// Records in the file.
    pub(crate) fn len(&self) -> usize {
        self.index.read().expect("cold index lock").len()
    }

    /// The record with this key, if the file has it.
    fn get(&self, kind: Kind, id: &str) -> io::Result<Option<ColdRecord>> {
        let offsets: Vec<u64> = {
            let index = self.index.read().expect("cold index lock");
            index.offsets(key_hash(kind, id)).collect()
        };
        for offset in offsets {
            let record = self.read_at(offset)?;
            if record.key().1 == id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    fn read_at(&self, offset: u64) -> io::Result<ColdRecord> {
        let mut at = FileAt {
            file: &self.file,
            offset,
        };
        match read_frame(&mut at, FRAME_BYTES_MAX)? {
            ReadFrame::Payload(payload) => decode(&payload),
            ReadFrame::End | ReadFrame::Damaged(_) => {
                Err(invalid_data(format!("cold record at {offset} is damaged")))
            }
        }
    }

    /// Appends the records of `sealed` that the file does not hold yet.
    pub(crate) fn append_sealed(&self, sealed: &Sealed) -> io::Result<u64> {
        let transfers = sealed.transfers().map(ColdRecordRef::Transfer);
        let entries = sealed.idempotency();
        let entries = entries.map(|(id, e)| ColdRecordRef::Idempotency(id, e));
        self.append(transfers.chain(entries))
    }

    /// Appends finished transfers (pending ones belong to the working set and are skipped).
    pub(crate) fn append_transfers<'a>(
        &self,
        transfers: impl Iterator<Item = &'a Transfer>,
    ) -> io::Result<u64> {
        let finished = transfers.filter(|t| t.status != TransferStatus::Pending);
        self.append(finished.map(ColdRecordRef::Transfer))
    }

    /// Appends idempotency entries.
    pub(crate) fn append_entries<'a>(
        &self,
        entries: impl Iterator<Item = &'a (String, IdempotencyEntry)>,
    ) -> io::Result<u64> {
        self.append(entries.map(|(id, e)| ColdRecordRef::Idempotency(id, e)))
    }

    /// Appends the records whose key the file does not hold; returns how many were appended.
    /// Written to the file (readable) when it returns; durable only after `sync`.
    fn append<'a>(&self, records: impl Iterator<Item = ColdRecordRef<'a>>) -> io::Result<u64> {
        let mut appender = self.appender.lock().expect("cold appender lock");
        let mut added = Vec::new();
        let mut added_digest = HistoryDigest::default();
        let mut payload = Vec::new();
        for record in records {
            let (kind, id) = record.key();
            if self.get(kind, id)?.is_some() {
                continue;
            }
            payload.clear();
            encode_into(&record, &mut payload)?;
            let offset = appender.end;
            appender.end += write_frame(&mut appender.out, &payload, FRAME_BYTES_MAX)?;
            added.push((key_hash(kind, id), offset));
            record.add_to(&mut added_digest);
        }
        appender.out.flush()?;
        self.written.store(appender.end, Ordering::Release);
        {
            let mut digest = self.digest.lock().expect("cold digest lock");
            digest.combine(&added_digest);
        }
        // In slices: apply looks every new command id up here, and must not wait for a whole
        // move's worth of inserts (or a table resize) at once.
        for slice in added.chunks(INDEX_INSERTS_PER_LOCK) {
            let mut index = self.index.write().expect("cold index lock");
            for (hash, offset) in slice {
                index.insert(*hash, *offset);
            }
        }
        Ok(added.len() as u64)
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let appender = self.appender.lock().expect("cold appender lock");
        appender.out.get_ref().sync_data()
    }

    /// Every record of `kind` up to the current end, in file order (records of the other kind
    /// are skipped without being decoded).
    fn scan(&self, kind: Kind) -> impl Iterator<Item = ColdRecord> + '_ {
        let end = self.written.load(Ordering::Acquire);
        let file = File::open(&self.path).unwrap_or_else(|e| fail("the file", e));
        let mut reader = BufReader::with_capacity(IO_BUFFER_BYTES, file.take(end));
        std::iter::from_fn(move || loop {
            let payload = match next_intact(&mut reader) {
                Ok(payload) => payload?,
                Err(e) => fail("a scan", e),
            };
            if Kind::of_payload(&payload) == Some(kind) {
                return Some(decode(&payload).unwrap_or_else(|e| fail("a scan", e)));
            }
        })
    }
}

/// The index, intact end and digest of the records in the first `len_bytes` of `file`.
fn scan_index(file: &File, len_bytes: u64) -> io::Result<(Index, u64, HistoryDigest)> {
    let mut index = Index::default();
    let mut digest = HistoryDigest::default();
    let mut end = 0u64;
    let mut reader =
        BufReader::with_capacity(IO_BUFFER_BYTES, FileAt { file, offset: 0 }.take(len_bytes));
    while let Some(payload) = next_intact(&mut reader)? {
        let Ok(record) = decode::<ColdRecord>(&payload) else {
            break;
        };
        let (kind, id) = record.key();
        index.insert(key_hash(kind, id), end);
        match &record {
            ColdRecord::Transfer(t) => digest.transfer(t),
            ColdRecord::Idempotency(id, e) => digest.idempotency(id, e),
        }
        end += FRAME_HEAD_BYTES + payload.len() as u64;
    }
    Ok((index, end, digest))
}

/// The next intact frame's payload; None at the end or at a torn or damaged frame (the tail a
/// crash cut short: nothing after it is trusted).
fn next_intact(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    match read_frame(reader, FRAME_BYTES_MAX)? {
        ReadFrame::Payload(payload) => Ok(Some(payload)),
        ReadFrame::End | ReadFrame::Damaged(_) => Ok(None),
    }
}

/// A `Read` over `file` from `offset` on, by positioned reads (no shared file offset).
struct FileAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl ColdHistory for ColdStore {
    fn transfer(&self, id: &str) -> Option<Transfer> {
        match self.get(Kind::Transfer, id) {
            Ok(Some(ColdRecord::Transfer(t))) => Some(t),
            Ok(_) => None,
            Err(e) => fail(&format!("transfer {id}"), e),
        }
    }

    fn idempotency(&self, command_id: &str) -> Option<IdempotencyEntry> {
        match self.get(Kind::Idempotency, command_id) {
            Ok(Some(ColdRecord::Idempotency(_, e))) => Some(e),
            Ok(_) => None,
            Err(e) => fail(&format!("idempotency entry {command_id}"), e),
        }
    }

    fn transfers(&self) -> Box<dyn Iterator<Item = Transfer> + '_> {
        Box::new(self.scan(Kind::Transfer).filter_map(|r| match r {
            ColdRecord::Transfer(t) => Some(t),
            ColdRecord::Idempotency(..) => None,
        }))
    }

    fn idempotency_entries(&self) -> Box<dyn Iterator<Item = (String, IdempotencyEntry)> + '_> {
        Box::new(self.scan(Kind::Idempotency).filter_map(|r| match r {
            ColdRecord::Idempotency(id, e) => Some((id, e)),
            ColdRecord::Transfer(_) => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{CommandResult, Outcome};

    fn transfer(id: &str, index: u64) -> Transfer {
        Transfer {
            id: id.to_owned(),
            debit: ledger::AccountId::parse("a").unwrap(),
            credit: ledger::AccountId::parse("b").unwrap(),
            amount: 5,
            status: TransferStatus::Posted,
            memo: None,
            created_at_us: index,
            created_index: index,
            expires_at_us: None,
            updated_index: index,
        }
    }

    fn entry(id: &str, index: u64) -> (String, IdempotencyEntry) {
        let result = CommandResult {
            command_id: id.to_owned(),
            index,
            timestamp_us: index,
            outcome: Outcome::Rejected(ledger::Rejection::InsufficientFunds),
            replayed: false,
        };
        let fingerprint = [index as u8; 32];
        (
            id.to_owned(),
            IdempotencyEntry {
                fingerprint,
                result,
            },
        )
    }

    #[test]
    fn a_payload_tells_its_kind_without_decoding() {
        let transfer = super::super::codec::encode(&ColdRecord::Transfer(transfer("t", 1)));
        let (id, e) = entry("t", 1);
        let entry = super::super::codec::encode(&ColdRecord::Idempotency(id, e));
        assert_eq!(Kind::of_payload(&transfer.unwrap()), Some(Kind::Transfer));
        assert_eq!(Kind::of_payload(&entry.unwrap()), Some(Kind::Idempotency));
    }

    #[test]
    fn records_survive_a_reopen_and_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdStore::open(dir.path()).unwrap();
        let transfers: Vec<Transfer> = (0..50).map(|i| transfer(&format!("t{i}"), i)).collect();
        let entries: Vec<_> = (0..50).map(|i| entry(&format!("t{i}"), i)).collect();
        assert_eq!(cold.append_transfers(transfers.iter()).unwrap(), 50);
        assert_eq!(cold.append_entries(entries.iter()).unwrap(), 50);
        // The same records again (a replay after a crash copies them twice): not stored again.
        assert_eq!(cold.append_transfers(transfers.iter()).unwrap(), 0);
        assert_eq!(cold.append_entries(entries.iter()).unwrap(), 0);
        cold.sync().unwrap();
        drop(cold);
        let cold = ColdStore::open(dir.path()).unwrap();
        assert_eq!(cold.len(), 100);
        assert_eq!(cold.transfer("t7"), Some(transfers[7].clone()));
        assert_eq!(cold.idempotency("t7"), Some(entries[7].1.clone()));
        assert_eq!(cold.transfer("t50"), None);
        let mut scanned: Vec<Transfer> = cold.transfers().collect();
        scanned.sort_by_key(|t| t.created_index);
        assert_eq!(scanned, transfers);
        assert_eq!(cold.idempotency_entries().count(), 50);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdStore::open(dir.path()).unwrap();
        let first: Vec<Transfer> = (0..10).map(|i| transfer(&format!("t{i}"), i)).collect();
        cold.append_transfers(first.iter()).unwrap();
        cold.sync().unwrap();
        drop(cold);
        let path = dir.path().join(RECORDS_FILE);
        let good = std::fs::metadata(&path).unwrap().len();
        // A frame cut short by a crash: a header announcing more bytes than follow.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(file);
        let cold = ColdStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(cold.len(), 10);
        cold.append_transfers([transfer("t10", 10)].iter()).unwrap();
        cold.sync().unwrap();
        drop(cold);
        let cold = ColdStore::open(dir.path()).unwrap();
        assert_eq!(cold.len(), 11);
        assert_eq!(cold.transfer("t10").map(|t| t.updated_index), Some(10));
        assert_eq!(cold.transfer("t3"), Some(first[3].clone()));
    }
}
