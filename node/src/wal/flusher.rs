//! The flusher: the one thread (or runtime task, in a simulation) that writes the WAL, with group
//! commit.
//!
//! Every write (entries, vote, committed, truncate, purge) is a [`Request`] on one bounded
//! channel, so writes are serialized in the order they were submitted and never reordered. The
//! flusher takes the first queued request, drains everything else already queued (one round),
//! frames all its records into one buffer, writes it, issues ONE `fdatasync`, records where
//! entries landed, removes segments a purge made obsolete, and only then fires the round's
//! completions, in submission order. After any I/O error the WAL is poisoned: every later request
//! fails without touching the disk (after a failed `fdatasync` the page cache cannot be trusted).
//!
//! A round made only of fire-and-forget records (committed log id) is written but not synced;
//! it stays open (same round number, no last-record flag) and the next round that has someone
//! waiting closes and syncs it. So "one round = one sync" holds for recovery's torn-tail rule.

use super::file::WalFs;
use super::index::Loc;
use super::record::{write_frame, EncodedRecord, FrameMeta};
use super::recovery::SegmentInfo;
use super::segment::{create_segment, segment_path, SEGMENT_HEADER_BYTES_MAX};
use super::Shared;
use crate::raft_types::{LogId, Vote};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Called once with the outcome of a request, after its round's `fdatasync`.
pub(crate) type Completion = Box<dyn FnOnce(io::Result<()>) + Send>;

/// One submitted write: its records (in order) and who to tell when they are durable.
pub(crate) struct Request {
    /// Records to write, each with what the flusher must do once it is written.
    pub records: Vec<(EncodedRecord, Effect)>,
    /// Fired after the covering sync (or with the error); `None` for fire-and-forget writes.
    pub done: Option<Completion>,
}

/// What a record means to the flusher's bookkeeping.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Effect {
    /// An entry: remember its location (if the slot still belongs to append `write_id`).
    Entry { index: u64, write_id: u64 },
    /// The vote: becomes readable once durable; copied into later segment headers.
    Vote(Vote),
    /// The committed log id: copied into later segment headers.
    Committed(Option<LogId>),
    /// A truncation: nothing to track.
    TruncateAfter,
    /// A purge: segments wholly at or below it can go once it is durable.
    Purge(LogId),
}

/// Configuration the flusher needs.
pub(crate) struct FlusherConfig {
    pub fs: Arc<dyn WalFs>,
    pub dir: PathBuf,
    /// Size of new segments (larger for a record that needs more).
    pub segment_bytes: u64,
    /// Test-only: skip every sync (see `WalOptions::unsafe_skip_sync_for_tests`).
    pub skip_sync: bool,
}

/// The flusher's state; lives on its thread.
pub(crate) struct Flusher {
    cfg: FlusherConfig,
    shared: Arc<Shared>,
    /// Segments before the active one, oldest first.
    closed: Vec<SegmentInfo>,
    /// The segment being appended to; `end` is where the next frame goes.
    active: SegmentInfo,
    /// Capacity of the active segment (its preallocated length).
    active_bytes: u64,
    next_seq: u64,
    group_seq: u64,
    /// Vote, committed and purged as written so far: repeated at the start of each new segment,
    /// so older segments can be deleted without losing them.
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// Frames of the current round not yet written.
    buf: Vec<u8>,
    /// Records were written since the last sync (a round left open by fire-and-forget writes).
    unsynced: bool,
}

/// What a round changed, applied to the shared state once it is durable.
#[derive(Default)]
struct RoundOutcome {
    locs: Vec<(u64, u64, Loc)>,
    vote: Option<Vote>,
    purge: Option<LogId>,
}

impl Flusher {
    /// Takes over the recovered segments (the last one is appended to) or, if there are none,
    /// starts the first segment with a header round of its own.
    pub fn start(
        cfg: FlusherConfig,
        shared: Arc<Shared>,
        mut segments: Vec<SegmentInfo>,
        mut next_seq: u64,
        group_seq: u64,
        header: (Option<Vote>, Option<LogId>, Option<LogId>),
    ) -> io::Result<Self> {
        let (vote, committed, purged) = header;
        let (active, fresh) = match segments.pop() {
            Some(seg) => (seg, false),
            None => {
                next_seq += 1;
                let bytes = cfg.segment_bytes;
                (new_segment(&cfg, &shared, next_seq - 1, bytes)?, true)
            }
        };
        let active_bytes = active.file.size_bytes()?;
        let mut flusher = Flusher {
            cfg,
            shared,
            closed: segments,
            active,
            active_bytes,
            next_seq,
            group_seq,
            vote,
            committed,
            purged,
            buf: Vec::new(),
            unsynced: false,
        };
        if fresh {
            flusher.frame_header(true)?;
        } else {
            // The log may end in a round that was torn (and repaired) or never synced: its last
            // record is not flagged. Close it with a round of our own, so rounds written from now
            // on are judged (on the next open) against a closed round.
            let meta = FrameMeta {
                group_seq: flusher.group_seq,
                last_in_group: true,
            };
            flusher.push_frame(&EncodedRecord::round_end()?, meta);
        }
        flusher.finish_round()?;
        Ok(flusher)
    }

    /// Runs until every sender is gone and the queue is drained.
    pub fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            self.commit_queued(first, &mut rx);
        }
    }

    /// [`Flusher::run`] as a task of a tokio runtime (`Execution::RuntimeOnly`): the same
    /// rounds, awaiting the queue instead of blocking a thread on it.
    pub async fn run_on_runtime(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.recv().await {
            self.commit_queued(first, &mut rx);
        }
    }

    /// One round: `first` and everything already queued behind it.
    fn commit_queued(&mut self, first: Request, rx: &mut mpsc::Receiver<Request>) {
        let mut round = vec![first];
        while let Ok(more) = rx.try_recv() {
            round.push(more);
        }
        self.commit_round(round);
    }

    fn commit_round(&mut self, round: Vec<Request>) {
        let result = match self.shared.poisoned() {
            Some(why) => Err(io::Error::other(why)),
            None => self
                .write_round(&round)
                .and_then(|outcome| self.apply_outcome(outcome)),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "wal: write failed; failing this and every later write");
            self.shared.poison(e.to_string());
        }
        for request in round {
            if let Some(done) = request.done {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
        }
    }

    fn write_round(&mut self, round: &[Request]) -> io::Result<RoundOutcome> {
        let mut total: usize = round.iter().map(|r| r.records.len()).sum();
        let mut outcome = RoundOutcome::default();
        // Only fire-and-forget records (committed): write them, but leave the sync (and the
        // round) open for the next round, so they cost no fdatasync of their own.
        let needs_sync = round.iter().any(|r| r.done.is_some());
        let round_end = if total == 0 && needs_sync && self.unsynced {
            // A barrier after unsynced records: close their round with a marker and sync.
            total = 1;
            Some(EncodedRecord::round_end()?)
        } else {
            None
        };
        if total == 0 {
            // Only barriers (empty appends, `Wal::sync`): every earlier round is already synced.
            return Ok(outcome);
        }
        let records = round
            .iter()
            .flat_map(|r| r.records.iter())
            .map(|(record, effect)| (record, Some(*effect)));
        let mut n = 0;
        for (record, effect) in records.chain(round_end.iter().map(|r| (r, None))) {
            n += 1;
            let meta = FrameMeta {
                group_seq: self.group_seq,
                last_in_group: needs_sync && n == total,
            };
            let loc = self.frame(record, meta)?;
            let Some(effect) = effect else {
                continue;
            };
            match effect {
                Effect::Entry { index, write_id } => {
                    outcome.locs.push((index, write_id, loc));
                    self.active.max_entry_index = self.active.max_entry_index.max(Some(index));
                }
                Effect::Vote(vote) => {
                    self.vote = Some(vote);
                    outcome.vote = Some(vote);
                }
                Effect::Committed(committed) => self.committed = committed,
                Effect::TruncateAfter => {}
                Effect::Purge(upto) => {
                    self.purged = self.purged.max(Some(upto));
                    outcome.purge = outcome.purge.max(Some(upto));
                }
            }
        }
        if needs_sync {
            self.finish_round()?;
        } else {
            self.write_buf()?;
            self.unsynced = true;
        }
        Ok(outcome)
    }

    /// Frames `record` into the round buffer, rotating to a new segment first if it does not fit.
    /// The new segment has the configured size, or more if that is needed to hold its header and
    /// this record (a record larger than a segment gets a segment of its own size).
    fn frame(&mut self, record: &EncodedRecord, meta: FrameMeta) -> io::Result<Loc> {
        let len = record.frame_len();
        if self.active.end + self.buf.len() as u64 + len > self.active_bytes {
            self.rotate(SEGMENT_HEADER_BYTES_MAX + len)?;
            if self.active.end + self.buf.len() as u64 + len > self.active_bytes {
                // The header outgrew SEGMENT_HEADER_BYTES_MAX: a bug, not a full disk.
                return Err(io::Error::other(format!(
                    "record of {len} bytes does not fit in a new segment of {} bytes",
                    self.active_bytes
                )));
            }
        }
        let loc = Loc {
            seq: self.active.seq,
            offset: self.active.end + self.buf.len() as u64,
            len,
        };
        self.push_frame(record, meta);
        Ok(loc)
    }

    /// Appends one frame to the round buffer.
    fn push_frame(&mut self, record: &EncodedRecord, meta: FrameMeta) {
        write_frame(&mut self.buf, record, meta);
        self.shared.stats.records.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the buffered frames to the active segment.
    fn write_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.active.file.write_at(self.active.end, &self.buf)?;
            self.active.end += self.buf.len() as u64;
            self.shared
                .stats
                .bytes
                .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
            self.buf.clear();
        }
        Ok(())
    }

    fn sync_active(&mut self) -> io::Result<()> {
        if !self.cfg.skip_sync {
            self.active.file.sync_data()?;
        }
        self.shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Ends a round: write, one `fdatasync`, next round number.
    fn finish_round(&mut self) -> io::Result<()> {
        self.write_buf()?;
        self.sync_active()?;
        self.group_seq += 1;
        self.unsynced = false;
        Ok(())
    }

    /// Closes the active segment (written and synced, so it is wholly durable before the next
    /// one exists) and starts a new one of at least `min_bytes` (and at least the configured
    /// size).
    fn rotate(&mut self, min_bytes: u64) -> io::Result<()> {
        self.write_buf()?;
        self.sync_active()?;
        let bytes = self.cfg.segment_bytes.max(min_bytes);
        let seg = new_segment(&self.cfg, &self.shared, self.next_seq, bytes)?;
        self.next_seq += 1;
        self.active_bytes = seg.file.size_bytes()?;
        let closed = std::mem::replace(&mut self.active, seg);
        self.closed.push(closed);
        self.frame_header(false)
    }

    /// Frames the active segment's header records into the current round: `SegmentStart`, then
    /// the vote, committed and purged written so far. `closes_round` flags the last of them as
    /// the end of the round (only when the header is a round of its own, at first start).
    fn frame_header(&mut self, closes_round: bool) -> io::Result<()> {
        let mut header = vec![EncodedRecord::segment_start(self.active.seq)?];
        if let Some(vote) = &self.vote {
            header.push(EncodedRecord::vote(vote)?);
        }
        if self.committed.is_some() {
            header.push(EncodedRecord::committed(&self.committed)?);
        }
        if let Some(purged) = &self.purged {
            header.push(EncodedRecord::purge(purged)?);
        }
        let count = header.len();
        for (i, record) in header.iter().enumerate() {
            let meta = FrameMeta {
                group_seq: self.group_seq,
                last_in_group: closes_round && i + 1 == count,
            };
            self.push_frame(record, meta);
        }
        Ok(())
    }

    /// Publishes a durable round: entry locations, the vote; then deletes purged segments.
    fn apply_outcome(&mut self, outcome: RoundOutcome) -> io::Result<()> {
        self.shared.publish(&outcome.locs, outcome.vote);
        if let Some(upto) = outcome.purge {
            self.delete_purged(upto)?;
        }
        Ok(())
    }

    /// Deletes the oldest closed segments whose entries are all purged. Only a prefix goes: the
    /// first kept segment's header carries the vote, committed and purged of all deleted ones.
    fn delete_purged(&mut self, upto: LogId) -> io::Result<()> {
        let obsolete = self
            .closed
            .iter()
            .take_while(|s| s.max_entry_index.is_none_or(|m| m <= upto.index))
            .count();
        if obsolete == 0 {
            return Ok(());
        }
        for seg in self.closed.drain(..obsolete) {
            self.cfg.fs.remove(&segment_path(&self.cfg.dir, seg.seq))?;
            self.shared.remove_file(seg.seq);
            tracing::debug!(seq = seg.seq, "wal: removed purged segment");
        }
        if !self.cfg.skip_sync {
            self.cfg.fs.sync_dir(&self.cfg.dir)?;
        }
        Ok(())
    }
}

/// Creates segment `seq` of `bytes` (durably, unless syncs are skipped) and makes it readable.
fn new_segment(
    cfg: &FlusherConfig,
    shared: &Shared,
    seq: u64,
    bytes: u64,
) -> io::Result<SegmentInfo> {
    let file = create_segment(&*cfg.fs, &cfg.dir, seq, bytes, !cfg.skip_sync)?;
    shared.add_file(seq, file.clone());
    Ok(SegmentInfo {
        seq,
        file,
        max_entry_index: None,
        end: 0,
    })
}
