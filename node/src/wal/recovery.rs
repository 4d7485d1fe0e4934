//! Opening a WAL: scan every segment, decide torn tail versus corruption, replay the records.
//!
//! The decision rests on two facts about how the flusher writes:
//! 1. a segment is synced before the next one is created, so every segment but the last was
//!    wholly durable: any damage in it is corruption;
//! 2. group-commit rounds are written one at a time, each followed by its `fdatasync`, so a power
//!    cut can only damage the last round (the one in flight). Every record carries its round
//!    number and the last record of a round is flagged.
//!
//! So in the last segment, damage at offset X is a torn tail (drop everything from X) when the
//! valid records found after X all belong to one round, and that round is the one the damaged
//! record belongs to: the round of the last good record before X, or the next round if that
//! record closed its round. Otherwise a later round was synced after the damaged bytes were
//! written, so the damage hit synced data: corruption, and the WAL refuses to open.
//!
//! Known limit (shared with etcd): a bit flip inside the last, synced round is indistinguishable
//! from a torn write and is dropped as one.

use super::dir::create_dir_all_durable;
use super::file::{WalFile, WalFs};
use super::index::{Loc, LogIndex};
use super::record::{FrameMeta, Record};
use super::segment::{list_segments, read_all, scan, segment_path, Scan};
use super::WalError;
use crate::raft_types::{LogId, Vote};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// A segment as the flusher tracks it.
#[derive(Debug)]
pub(crate) struct SegmentInfo {
    /// Sequence number.
    pub seq: u64,
    /// Open handle.
    pub file: Arc<dyn WalFile>,
    /// Largest entry index written to it (live or not): it may be deleted once this is purged.
    pub max_entry_index: Option<u64>,
    /// Offset where the next record goes (meaningful for the last segment).
    pub end: u64,
}

/// Everything `Wal::open` needs from the files.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Live log (purged boundary, entries and their locations).
    pub log: LogIndex,
    /// Last vote written.
    pub vote: Option<Vote>,
    /// Last committed log id written.
    pub committed: Option<LogId>,
    /// Segments kept, oldest first; the last one is reused for appends.
    pub segments: Vec<SegmentInfo>,
    /// Sequence number for the next new segment.
    pub next_seq: u64,
    /// Group-commit round number for the next write.
    pub next_group_seq: u64,
}

fn corrupt(dir: &Path, seq: u64, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        path: segment_path(dir, seq),
        offset,
        reason: reason.into(),
    }
}

/// Is damage followed by `stray` frames a torn final round, given the last good record before it?
fn is_torn_final_round(
    before: Option<FrameMeta>,
    stray: &[(u64, FrameMeta)],
) -> Result<(), String> {
    let rounds: BTreeSet<u64> = stray.iter().map(|(_, meta)| meta.group_seq).collect();
    let Some(&round) = rounds.iter().next() else {
        return Ok(());
    };
    if rounds.len() > 1 {
        return Err(format!(
            "valid records of {} commit rounds follow the damaged bytes",
            rounds.len()
        ));
    }
    match before {
        None => Ok(()),
        Some(b) if b.group_seq == round => Ok(()),
        Some(b) if b.last_in_group && b.group_seq.checked_add(1) == Some(round) => Ok(()),
        Some(b) => Err(format!(
            "records of commit round {round} follow damaged bytes after round {} (last flag {}): synced data is damaged",
            b.group_seq, b.last_in_group
        )),
    }
}

/// Replay state carried across segments.
struct Replay {
    log: LogIndex,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// Metadata of the last good record so far.
    before: Option<FrameMeta>,
    /// Largest round number seen anywhere (stray records included).
    max_group_seq: u64,
}

impl Replay {
    fn apply(&mut self, dir: &Path, seq: u64, scanned: &Scan) -> Result<Option<u64>, WalError> {
        let mut max_entry_index = None;
        for (i, frame) in scanned.frames.iter().enumerate() {
            self.max_group_seq = self.max_group_seq.max(frame.meta.group_seq);
            match &frame.record {
                Record::SegmentStart(s) if i == 0 && *s == seq => {}
                Record::SegmentStart(s) => {
                    return Err(corrupt(
                        dir,
                        seq,
                        frame.offset,
                        format!("unexpected segment start {s} at record {i}"),
                    ));
                }
                _ if i == 0 => {
                    return Err(corrupt(
                        dir,
                        seq,
                        0,
                        "segment does not start with its segment-start record",
                    ))
                }
                Record::Entry(log_id) => {
                    let loc = Loc {
                        seq,
                        offset: frame.offset,
                        len: frame.len,
                    };
                    self.log
                        .replay(*log_id, loc)
                        .map_err(|why| corrupt(dir, seq, frame.offset, why))?;
                    max_entry_index = max_entry_index.max(Some(log_id.index));
                }
                Record::Vote(vote) => self.vote = Some(*vote),
                Record::Committed(committed) => self.committed = *committed,
                Record::TruncateAfter(last) => self.log.truncate_after(last.map(|l| l.index)),
                Record::Purge(upto) => self.log.purge(*upto),
                Record::RoundEnd => {}
            }
        }
        if let Some(last) = scanned.frames.last() {
            self.before = Some(last.meta);
        }
        Ok(max_entry_index)
    }
}

/// Scans and replays the WAL in `dir`, repairing a torn tail (zero-filling it, durably).
pub(crate) fn recover(
    fs: &dyn WalFs,
    dir: &Path,
    options: &super::WalOptions,
) -> Result<Recovered, WalError> {
    create_dir_all_durable(fs, dir)?;
    let seqs = list_segments(fs, dir)?;
    let mut replay = Replay {
        log: LogIndex::new(options.entry_cache_max)
            .with_cache_bytes_max(options.entry_cache_bytes_max),
        vote: None,
        committed: None,
        before: None,
        max_group_seq: 0,
    };
    let mut segments = Vec::new();
    for (i, &seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == seqs.len();
        let file: Arc<dyn WalFile> = fs.open(&segment_path(dir, seq))?.into();
        let buf = read_all(&*file)?;
        let scanned = scan(&buf).map_err(|(offset, why)| corrupt(dir, seq, offset, why))?;
        let damage = || {
            scanned
                .damage
                .clone()
                .unwrap_or_else(|| "non-zero bytes after the last record".into())
        };
        if scanned.is_damaged() {
            if !is_last {
                return Err(corrupt(
                    dir,
                    seq,
                    scanned.end,
                    format!("closed segment damaged: {}", damage()),
                ));
            }
            let before = scanned.frames.last().map(|f| f.meta).or(replay.before);
            is_torn_final_round(before, &scanned.stray)
                .map_err(|why| corrupt(dir, seq, scanned.end, why))?;
        }
        for (_, meta) in &scanned.stray {
            if meta.group_seq != u64::MAX {
                replay.max_group_seq = replay.max_group_seq.max(meta.group_seq);
            }
        }
        if scanned.frames.is_empty() && is_last {
            // Created, then the power went before its first round was synced: nothing in it was
            // ever acknowledged. Remove it; the flusher starts a fresh segment.
            tracing::warn!(seq, "wal: removing last segment with no complete record");
            fs.remove(&segment_path(dir, seq))?;
            fs.sync_dir(dir)?;
            continue;
        }
        let max_entry_index = replay.apply(dir, seq, &scanned)?;
        if scanned.is_damaged() {
            tracing::warn!(seq, offset = scanned.end, reason = %damage(), "wal: dropping torn tail");
            let zeros = vec![0u8; (scanned.nonzero_end - scanned.end) as usize];
            file.write_at(scanned.end, &zeros)?;
            file.sync_data()?;
        }
        segments.push(SegmentInfo {
            seq,
            file,
            max_entry_index,
            end: scanned.end,
        });
    }
    replay
        .log
        .check_contiguous()
        .map_err(|why| WalError::Corrupt {
            path: dir.to_path_buf(),
            offset: 0,
            reason: why,
        })?;
    let next_seq = seqs.last().map_or(1, |s| s + 1);
    Ok(Recovered {
        log: replay.log,
        vote: replay.vote,
        committed: replay.committed,
        segments,
        next_seq,
        next_group_seq: replay.max_group_seq + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(group_seq: u64, last_in_group: bool) -> FrameMeta {
        FrameMeta {
            group_seq,
            last_in_group,
        }
    }

    #[test]
    fn torn_round_rules() {
        // Nothing valid after the damage: always a torn tail.
        assert!(is_torn_final_round(Some(meta(3, true)), &[]).is_ok());
        // Damage inside round 4, more of round 4 after it.
        assert!(is_torn_final_round(Some(meta(4, false)), &[(10, meta(4, true))]).is_ok());
        // Round 3 closed; round 4 torn at its start.
        assert!(is_torn_final_round(Some(meta(3, true)), &[(10, meta(4, false))]).is_ok());
        // Round 3 not closed but round 4 exists: round 3 was synced, its tail is damaged.
        assert!(is_torn_final_round(Some(meta(3, false)), &[(10, meta(4, true))]).is_err());
        // Two later rounds after the damage.
        assert!(is_torn_final_round(
            Some(meta(3, true)),
            &[(10, meta(4, true)), (20, meta(5, true))]
        )
        .is_err());
        // A round that skips one.
        assert!(is_torn_final_round(Some(meta(3, true)), &[(10, meta(5, true))]).is_err());
    }
}
