//! `ColdStore`: the ledger's cold history — finished transfers and idempotency entries that
//! left memory — in one append-only file, `<dir>/history/records.bin`, indexed by sorted run
//! files next to it (`run`, `chain`) that map a 64-bit hash of each record's key to its locator.
//!
//! ```text
//! file   := frame*               (`frame`: len: u32 LE | crc32c(payload): u32 LE | payload)
//! payload:= a compressed block of records (`block`: up to 64 KiB of them before compression)
//! record := FORMAT_V1 | bincode(ColdRecord)
//! ```
//!
//! The runs map a key hash to a locator: the offset of the record's block and its slot in it.
//!
//! Appends are sequential (no B-tree insert per record: random-key inserts into sled cost a
//! large share of a node's CPU, memory and disk) and happen off the apply path: a snapshot build
//! copies the sealed generations it captured (after its file is written, before its pointer),
//! and an install copies the finished records of the installed file. Every record is final (a
//! finished transfer never changes, an idempotency entry is written once); a record whose key
//! is already in the file is not appended again, so each key is in the file once.
//!
//! Index: every append writes the run of exactly the bytes it appended (written and renamed;
//! synced by `sync` together with the records) before it returns, so every record in the file
//! up to its end is in a run; then adjacent runs are merged while the newest holds at least
//! half as many entries as the one before it, which keeps their number logarithmic. A lookup
//! asks the runs newest first: bloom filter, then one block read (see `run`).
//!
//! Durability: `records.bin` and the runs written since are synced by `sync` only, which runs
//! before the snapshot pointer that relies on the records is written (appends between snapshots are not synced: what a
//! crash loses of them lies after the last snapshot and is replayed from the log). So a crash
//! can leave runs covering records that were lost: open keeps the chain of runs that tile the
//! file from 0 and whose last record is intact (`chain`), scans the file only from the chain's
//! end, cuts it at the first torn, zeroed or corrupt frame and indexes what it kept. Open reads
//! the runs' footers and that unindexed tail, never the indexed history. The file may hold
//! records from beyond the state the node restarts with (copied, snapshot not yet current); the
//! ledger's horizon hides them (see `ledger::tiers`).
//!
//! Memory: per record, the runs' bloom filters (2 bytes) and fence keys (8 bytes per 256);
//! the records and the index entries are read from disk (the OS page cache) on demand.

mod block;
mod bloom;
mod chain;
mod record;
mod run;
mod scan;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
mod writeback;

use super::codec::{decode, encode_into, invalid_data};
use super::frame::{read_frame, write_frame, ReadFrame};
use crate::wal::{create_dir_all_durable, RealFs};
use block::{Block, BlockWriter};
use chain::{Runs, FRAME_BYTES_MAX};
use ledger::{ColdHistory, HistoryDigest, IdempotencyEntry, Sealed, Transfer, TransferStatus};
pub(crate) use record::ColdRecord;
use record::{key_hash, ColdRecordRef, Keys, Kind};
use run::{FileAt, Span};
use scan::{block_entries, frame_records, scan_tail, Tail};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Name of the file inside the history directory.
const RECORDS_FILE: &str = "records.bin";

/// Buffer of the appender and of scans.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// The cold history of one node.
pub(crate) struct ColdStore {
    /// The history directory (records and runs).
    dir: PathBuf,
    /// Where the records file is (scans open their own handle: a cloned one would share its
    /// offset).
    path: PathBuf,
    /// The records file, for positioned reads and writes.
    file: File,
    /// The file's end (the offset the next frame gets); held for a whole append.
    appender: Mutex<u64>,
    /// The runs, oldest first; readers copy the `Arc` and search without the lock.
    runs: RwLock<Arc<Runs>>,
    /// Length of the file up to which frames are written and indexed; scans stop here.
    written: AtomicU64,
    /// Digest of every record in the file (set by `cut_to`, which every open of the store
    /// calls, then summed by appends).
    digest: Mutex<HistoryDigest>,
    /// Ends a restart may cut the file back to (the current snapshot's, a pending one's):
    /// two runs on either side of one are never merged, so a cut never falls inside a run.
    boundaries: Mutex<Vec<u64>>,
    /// Run files written since the last `sync`.
    unsynced: Mutex<Unsynced>,
}

/// Run files `ColdStore::sync` has yet to make durable.
#[derive(Default)]
struct Unsynced {
    runs: Vec<PathBuf>,
}

/// A read that failed: the history on disk is unreadable, which no replica can answer around.
fn fail(what: &str, e: io::Error) -> ! {
    panic!("cold history: cannot read {what}: {e} (the node stops; restore it from a peer)")
}

impl ColdStore {
    /// Opens (creating) `dir/records.bin` and its runs, cuts off a torn tail and indexes the
    /// records after the last run.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        create_dir_all_durable(&RealFs, dir)?;
        let path = dir.join(RECORDS_FILE);
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if created {
            super::meta::sync_dir(dir)?;
        }
        let started = std::time::Instant::now();
        let len_bytes = file.metadata()?.len();
        let runs = chain::open_chain(dir, &file, len_bytes)?;
        let indexed = runs.last().map_or(0, |r| r.span.end);
        let Tail { end, entries, last } = scan_tail(&file, indexed)?;
        if end < len_bytes {
            tracing::warn!(kept = end, "cold history: cutting off a torn tail");
            file.set_len(end)?;
            file.sync_all()?;
        }
        let store = Self {
            dir: dir.to_owned(),
            path,
            file,
            appender: Mutex::new(end),
            runs: RwLock::new(Arc::new(runs)),
            written: AtomicU64::new(end),
            digest: Mutex::new(HistoryDigest::default()),
            boundaries: Mutex::new(Vec::new()),
            unsynced: Mutex::new(Unsynced::default()),
        };
        tracing::info!(
            runs = store.runs().len(),
            bytes = end,
            unindexed_records = entries.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cold history opened"
        );
        if let Some(last) = last {
            store.add_run(indexed, end, last, entries)?;
        }
        Ok(store)
    }

    /// Cuts the file back to its first `len_bytes` — records appended after the snapshot a
    /// restart resumes at, which the log replays, or everything before an install refills it
    /// — syncs it, and takes `digest` as the digest of what remains (the snapshot's, which
    /// recorded both). Runs reaching past the cut are deleted; the records between the last
    /// run kept and the cut (only after a crash) are indexed again.
    pub(crate) fn cut_to(&self, len_bytes: u64, digest: HistoryDigest) -> io::Result<()> {
        let mut end = self.appender.lock().expect("cold appender lock");
        if len_bytes > *end {
            return Err(invalid_data(format!(
                "the cold history has {} bytes, the snapshot relies on {len_bytes}: it lost \
                 records that were synced",
                *end
            )));
        }
        let runs = self.runs();
        let (kept, dropped): (Vec<_>, Vec<_>) =
            runs.iter().cloned().partition(|r| r.span.end <= len_bytes);
        *self.runs.write().expect("cold runs lock") = Arc::new(kept);
        for run in &dropped {
            chain::remove_run(run)?;
        }
        self.file.set_len(len_bytes)?;
        self.file.sync_all()?;
        super::meta::sync_dir(&self.dir)?;
        let indexed = self.runs().last().map_or(0, |r| r.span.end);
        let Tail {
            end: tail_end,
            entries,
            last,
        } = scan_tail(&self.file, indexed)?;
        if tail_end != len_bytes {
            return Err(invalid_data(format!(
                "the cold history is damaged before byte {len_bytes}, which a snapshot relies on"
            )));
        }
        if let Some(last) = last {
            self.add_run(indexed, len_bytes, last, entries)?;
        }
        self.sync()?;
        *end = len_bytes;
        self.written.store(len_bytes, Ordering::Release);
        *self.digest.lock().expect("cold digest lock") = digest;
        self.settle_boundary(len_bytes);
        Ok(())
    }

    /// Bytes of the file holding records (all indexed).
    pub(crate) fn end_bytes(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Digest of every record in the file.
    pub(crate) fn digest(&self) -> HistoryDigest {
        *self.digest.lock().expect("cold digest lock")
    }

    /// Keeps `end_bytes` a run boundary: a snapshot about to be current relies on it.
    pub(crate) fn keep_boundary(&self, end_bytes: u64) {
        let mut boundaries = self.boundaries.lock().expect("cold boundaries lock");
        if !boundaries.contains(&end_bytes) {
            boundaries.push(end_bytes);
        }
    }

    /// The snapshot relying on `end_bytes` is current: earlier boundaries are free again.
    pub(crate) fn settle_boundary(&self, end_bytes: u64) {
        let mut boundaries = self.boundaries.lock().expect("cold boundaries lock");
        boundaries.retain(|b| *b > end_bytes);
        boundaries.push(end_bytes);
    }

    /// The records in the file's first `len_bytes`, in file order; a damaged frame is an
    /// error.
    pub(crate) fn records_before(
        &self,
        len_bytes: u64,
    ) -> io::Result<impl Iterator<Item = io::Result<ColdRecord>>> {
        let file = File::open(&self.path)?;
        let reader = BufReader::with_capacity(IO_BUFFER_BYTES, file.take(len_bytes));
        Ok(frame_records(reader, None))
    }

    /// Records in the file.
    pub(crate) fn len(&self) -> usize {
        self.runs().iter().map(|r| r.span.count as usize).sum()
    }

    /// The current runs (a copy of the list: a merge may replace it meanwhile).
    fn runs(&self) -> Arc<Runs> {
        Arc::clone(&self.runs.read().expect("cold runs lock"))
    }

    /// The record with this key, if the file has it.
    fn get(&self, kind: Kind, id: &str) -> io::Result<Option<ColdRecord>> {
        self.get_in(&self.runs(), key_hash(kind, id), kind, id)
    }

    /// The record with this key and key hash, if one of `runs` indexes it.
    fn get_in(
        &self,
        runs: &Runs,
        hash: u64,
        kind: Kind,
        id: &str,
    ) -> io::Result<Option<ColdRecord>> {
        for run in runs.iter().rev() {
            for locator in run.offsets(hash)? {
                let record = self.read_at(locator)?;
                if record.key() == (kind, id) {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    /// The record a locator names: its block read and decompressed, the record decoded.
    fn read_at(&self, locator: u64) -> io::Result<ColdRecord> {
        let (offset, slot) = block::split(locator);
        let mut at = FileAt {
            file: &self.file,
            offset,
        };
        match read_frame(&mut at, FRAME_BYTES_MAX)? {
            ReadFrame::Payload(payload) => decode(Block::open(&payload)?.record(slot)?),
            ReadFrame::End | ReadFrame::Damaged(_) => {
                Err(invalid_data(format!("cold block at {offset} is damaged")))
            }
        }
    }

    /// Appends the records of `sealed` that the file does not hold yet (a generation holds
    /// each key once: its records are maps keyed by id).
    pub(crate) fn append_sealed(&self, sealed: &Sealed) -> io::Result<u64> {
        let transfers = sealed.transfers().map(ColdRecordRef::Transfer);
        let entries = sealed.idempotency();
        let entries = entries.map(|(id, e)| ColdRecordRef::Idempotency(id, e));
        self.append(transfers.chain(entries), Keys::Distinct)
    }

    /// Appends finished transfers (pending ones belong to the working set and are skipped).
    pub(crate) fn append_transfers<'a>(
        &self,
        transfers: impl Iterator<Item = &'a Transfer>,
    ) -> io::Result<u64> {
        let finished = transfers.filter(|t| t.status != TransferStatus::Pending);
        self.append(finished.map(ColdRecordRef::Transfer), Keys::MayRepeat)
    }

    /// Appends idempotency entries.
    pub(crate) fn append_entries<'a>(
        &self,
        entries: impl Iterator<Item = &'a (String, IdempotencyEntry)>,
    ) -> io::Result<u64> {
        let entries = entries.map(|(id, e)| ColdRecordRef::Idempotency(id, e));
        self.append(entries, Keys::MayRepeat)
    }

    /// Appends the records whose key the file does not hold (each key once); returns how many
    /// were appended. Written to the file and indexed (readable) when it returns; durable only
    /// after `sync`.
    fn append<'a>(
        &self,
        records: impl Iterator<Item = ColdRecordRef<'a>>,
        keys: Keys,
    ) -> io::Result<u64> {
        let mut end = self.appender.lock().expect("cold appender lock");
        let start = *end;
        let (new_end, appended) = match self.write_indexed(start, records, keys) {
            Ok(done) => done,
            Err(e) => {
                // Frames past `start` are in no run: cut them off (best effort: frames left
                // there are overwritten by the next append, or indexed by the next open).
                let _ = self.file.set_len(start);
                return Err(e);
            }
        };
        *end = new_end;
        self.written.store(new_end, Ordering::Release);
        // The appended records are readable now; merging only tidies up.
        self.merge_while_due()?;
        Ok(appended)
    }

    /// Writes the frames of the new records from `start` on and their run; returns the new
    /// end of the file and how many records it appended.
    fn write_indexed<'a>(
        &self,
        start: u64,
        records: impl Iterator<Item = ColdRecordRef<'a>>,
        keys: Keys,
    ) -> io::Result<(u64, u64)> {
        // The runs cannot change meanwhile: the caller holds the appender, which every
        // change of the list takes.
        let runs = self.runs();
        // Only appends whose keys may repeat (an install's records) keep the set of keys seen.
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        let mut digest = HistoryDigest::default();
        let mut buf = Vec::with_capacity(IO_BUFFER_BYTES);
        let mut block = BlockWriter::default();
        let mut payload = Vec::new();
        let (mut end, mut last) = (start, start);
        let mut close = |block: &mut BlockWriter, buf: &mut Vec<u8>, end: &mut u64| {
            last = *end;
            *end += write_frame(buf, &block.finish()?, FRAME_BYTES_MAX)?;
            if buf.len() >= IO_BUFFER_BYTES {
                let at = *end - buf.len() as u64;
                self.file.write_all_at(buf, at)?;
                writeback::start(&self.file, at, buf.len() as u64);
                buf.clear();
            }
            io::Result::Ok(())
        };
        for record in records {
            let (kind, id) = record.key();
            let hash = key_hash(kind, id);
            let repeated = keys == Keys::MayRepeat && !seen.insert((kind, id));
            if repeated || self.get_in(&runs, hash, kind, id)?.is_some() {
                continue;
            }
            payload.clear();
            encode_into(&record, &mut payload)?;
            record.add_encoded_to(&payload, &mut digest)?;
            let slot = block.push(&payload)?;
            entries.push((hash, block::locator(end, slot)));
            if block.is_full() {
                close(&mut block, &mut buf, &mut end)?;
            }
        }
        if !block.is_empty() {
            close(&mut block, &mut buf, &mut end)?;
        }
        if entries.is_empty() {
            return Ok((start, 0));
        }
        let at = end - buf.len() as u64;
        self.file.write_all_at(&buf, at)?;
        writeback::start(&self.file, at, buf.len() as u64);
        let appended = entries.len() as u64;
        self.add_run(start, end, last, entries)?;
        self.digest
            .lock()
            .expect("cold digest lock")
            .combine(&digest);
        Ok((end, appended))
    }

    /// Writes the run of the records `entries` (hash, locator) in `[start, end)`, whose last
    /// frame is at `last`, and adds it to the list.
    fn add_run(
        &self,
        start: u64,
        end: u64,
        last: u64,
        mut entries: Vec<(u64, u64)>,
    ) -> io::Result<()> {
        entries.sort_unstable();
        let span = Span {
            start,
            end,
            count: entries.len() as u64,
            last,
        };
        let run = chain::write_run(&self.dir, span, entries.into_iter().map(Ok))?;
        let path = run.path().to_owned();
        self.unsynced
            .lock()
            .expect("cold unsynced lock")
            .runs
            .push(path);
        let mut runs = self.runs.write().expect("cold runs lock");
        let mut next = Runs::clone(&runs);
        next.push(run);
        *runs = Arc::new(next);
        Ok(())
    }

    /// Merges the newest two runs while the newest is at least half the size of the one before
    /// it. Lookups go on meanwhile over the list as it was; the inputs are deleted once the
    /// merged run replaced them. Called with the appender held (or during open).
    fn merge_while_due(&self) -> io::Result<()> {
        loop {
            let runs = self.runs();
            let boundaries = self
                .boundaries
                .lock()
                .expect("cold boundaries lock")
                .clone();
            if !chain::merge_due(&runs, &boundaries) {
                return Ok(());
            }
            let (older, newer) = (&runs[runs.len() - 2], &runs[runs.len() - 1]);
            let merged = chain::merge(&self.dir, older, newer)?;
            let merged_path = merged.path().to_owned();
            let mut next: Runs = runs[..runs.len() - 2].to_vec();
            next.push(merged);
            *self.runs.write().expect("cold runs lock") = Arc::new(next);
            self.unsynced
                .lock()
                .expect("cold unsynced lock")
                .runs
                .push(merged_path);
            // Deleted now, not after the merged run is durable: a power cut that loses the
            // merged run leaves a gap the next open indexes again from the records (SIGKILL
            // loses nothing: the page cache survives it).
            chain::remove_run(older)?;
            chain::remove_run(newer)?;
        }
    }

    /// Makes everything appended so far durable: the records, the runs written since the last
    /// sync (those not merged away since) and the directory. Runs are not synced as they are
    /// written (each fsync there stalled the WAL's own: single transfers fell from ~4.3k/s to
    /// ~2.3k/s); a build syncs them before its snapshot is current.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()?;
        let mut unsynced = self.unsynced.lock().expect("cold unsynced lock");
        if unsynced.runs.is_empty() {
            return Ok(());
        }
        for path in &unsynced.runs {
            match File::open(path) {
                Ok(f) => f.sync_all()?,
                // Merged into a later run since.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        super::meta::sync_dir(&self.dir)?;
        unsynced.runs.clear();
        Ok(())
    }

    /// Every record of `kind` up to the current end, in file order (records of the other kind
    /// are skipped without being decoded). A damaged frame fails (the node stops): below the
    /// end, every frame was written whole.
    fn scan(&self, kind: Kind) -> impl Iterator<Item = ColdRecord> + '_ {
        let end = self.written.load(Ordering::Acquire);
        let file = File::open(&self.path).unwrap_or_else(|e| fail("the file", e));
        let reader = BufReader::with_capacity(IO_BUFFER_BYTES, file.take(end));
        frame_records(reader, Some(kind)).map(|r| r.unwrap_or_else(|e| fail("a scan", e)))
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
