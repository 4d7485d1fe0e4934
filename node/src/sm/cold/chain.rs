//! The chain of index runs in the history directory: the runs that tile `[0, e)` of
//! `records.bin` contiguously, oldest first. Owns the run files' names, which runs an open
//! keeps (and deletes the rest), writing a new run durably, and merging adjacent runs so that
//! their number stays logarithmic in the number of appends.
//!
//! Files are named `index-<start:020>-<end:020>.run`; one is written as `<name>.tmp` and
//! renamed; the store syncs new runs and the directory together with the records (a run lost
//! or torn in a power cut is dropped on open and its records indexed again). A merge writes
//! the merged run before it deletes its two inputs, so a crash may leave both: the chain then
//! takes the run reaching furthest from each point, and the inputs are deleted on open.

use super::run::{Run, RunWriter, Span};
use crate::sm::frame::{read_frame, ReadFrame, FRAME_HEAD_BYTES};
use crate::sm::meta::sync_dir;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const RUN_PREFIX: &str = "index-";
const RUN_SUFFIX: &str = ".run";
const TMP_SUFFIX: &str = ".tmp";

/// Largest frame accepted on read (a corrupt length must not allocate gigabytes).
pub(super) const FRAME_BYTES_MAX: usize = 64 << 20;

/// The runs in use, oldest (lowest byte range) first.
pub(super) type Runs = Vec<Arc<Run>>;

/// The name of the run covering `[start, end)`.
pub(super) fn run_path(dir: &Path, start: u64, end: u64) -> PathBuf {
    dir.join(format!("{RUN_PREFIX}{start:020}-{end:020}{RUN_SUFFIX}"))
}

/// `(start, end)` from a run file's name.
fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix(RUN_PREFIX)?.strip_suffix(RUN_SUFFIX)?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// Writes the run of `span` from `entries` (sorted by hash, then offset) under its name (not
/// synced: see `ColdStore::sync`).
pub(super) fn write_run(
    dir: &Path,
    span: Span,
    entries: impl IntoIterator<Item = io::Result<(u64, u64)>>,
) -> io::Result<Arc<Run>> {
    let path = run_path(dir, span.start, span.end);
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
    let written = (|| {
        let mut writer = RunWriter::create(tmp.clone(), span)?;
        for entry in entries {
            let (hash, offset) = entry?;
            writer.push(hash, offset)?;
        }
        Ok(Arc::new(writer.finish(&path)?))
    })();
    if written.is_err() {
        // Best effort: a run the caller does not keep must not be found by the next open.
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(&path);
    }
    written
}

/// Whether the newest run is due to be merged into the one before it: it holds at least half
/// as many entries, and the offset between them is none of `boundaries` (ends a restart may
/// cut the records back to, which must stay between runs).
pub(super) fn merge_due(runs: &Runs, boundaries: &[u64]) -> bool {
    match runs.as_slice() {
        [.., older, newer] => {
            !boundaries.contains(&newer.span.start) && newer.span.count * 2 >= older.span.count
        }
        _ => false,
    }
}

/// The run covering both adjacent runs (`older` ends where `newer` starts), by a streaming
/// merge of their entries. The inputs are still on disk when it returns.
pub(super) fn merge(dir: &Path, older: &Run, newer: &Run) -> io::Result<Arc<Run>> {
    let span = Span {
        start: older.span.start,
        end: newer.span.end,
        count: older.span.count + newer.span.count,
        last: newer.span.last,
    };
    let mut a = older.entries().peekable();
    let mut b = newer.entries().peekable();
    let merged = std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (Some(Ok(x)), Some(Ok(y))) => x <= y,
            (Some(Err(_)), _) | (Some(_), None) => true,
            (_, Some(_)) => false,
            (None, None) => return None,
        };
        if take_a {
            a.next()
        } else {
            b.next()
        }
    });
    write_run(dir, span, merged)
}

/// Deletes a run file that is no longer in the chain.
pub(super) fn remove_run(run: &Run) -> io::Result<()> {
    std::fs::remove_file(run.path())
}

/// The runs of `dir` that tile `records.bin` from 0 and whose last frame is intact in
/// `records` (of `records_len` bytes); deletes every other run file and every temporary file.
/// Reads only the runs' headers and footers and one frame per kept run.
pub(super) fn open_chain(dir: &Path, records: &File, records_len: u64) -> io::Result<Runs> {
    let mut candidates = Vec::new();
    let mut doomed = Vec::new();
    for dirent in std::fs::read_dir(dir)? {
        let path = dirent?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(RUN_PREFIX) && name.ends_with(TMP_SUFFIX) {
            doomed.push(path);
        } else if let Some(range) = parse_run_name(name) {
            candidates.push((range, path));
        }
    }
    // Furthest-reaching first among runs with the same start: a merged run beats its inputs.
    candidates.sort_by_key(|((start, end), _)| (*start, std::cmp::Reverse(*end)));
    let mut chain = Runs::new();
    let mut cursor = 0u64;
    for ((start, end), path) in candidates {
        if start != cursor {
            doomed.push(path);
            continue;
        }
        match Run::open(&path).and_then(|run| check_run(run, (start, end), records, records_len)) {
            Ok(run) => {
                cursor = end;
                chain.push(Arc::new(run));
            }
            Err(e) => {
                tracing::warn!(run = %path.display(), error = %e, "cold history: dropping an index run");
                doomed.push(path);
            }
        }
    }
    if !doomed.is_empty() {
        for path in &doomed {
            std::fs::remove_file(path)?;
        }
        sync_dir(dir)?;
    }
    Ok(chain)
}

/// `run` if it is the run its name says and its last frame is intact in `records`: a run
/// whose records were lost in a crash (never synced) ends beyond the intact end.
fn check_run(run: Run, name: (u64, u64), records: &File, records_len: u64) -> io::Result<Run> {
    let span = run.span;
    if (span.start, span.end) != name || span.end > records_len {
        return Err(crate::sm::codec::invalid_data(format!(
            "covers [{}, {}), records end at {records_len}",
            span.start, span.end
        )));
    }
    let mut at = super::run::FileAt {
        file: records,
        offset: span.last,
    };
    let intact = match read_frame(&mut at, FRAME_BYTES_MAX)? {
        ReadFrame::Payload(payload) => {
            let ends_there = span.last + FRAME_HEAD_BYTES + payload.len() as u64 == span.end;
            let entries = super::block_entries(&payload, span.last).ok();
            let hash = entries.and_then(|e| e.last().map(|(hash, _)| *hash));
            ends_there && hash.is_some_and(|h| run.may_contain(h))
        }
        ReadFrame::End | ReadFrame::Damaged(_) => false,
    };
    if !intact {
        return Err(crate::sm::codec::invalid_data(format!(
            "its last record (at {}) is not intact",
            span.last
        )));
    }
    Ok(run)
}
