//! Segment files: naming, creation (preallocated), and scanning a segment's records on open.
//!
//! A segment is `wal-<seq:020>.log`, where `seq` is a sequence number that only grows (never
//! reused, so a segment removed by truncation or purge cannot be confused with a new one). Its
//! first record is `SegmentStart(seq)`; records follow back to back; the rest is zero fill.
//!
//! Segments have the configured size, except one started for a record too large for it, which
//! is sized to hold its header and that record; recovery takes each segment at its own length.

use super::file::{WalFile, WalFs};
use super::record::{decode_record, parse_frame, FrameMeta, Parsed, Record};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default segment size. Segments are preallocated with `set_len` so that appends inside a
/// segment do not grow the file: `fdatasync` then has no file-size metadata to flush on each
/// group commit. 64 MiB (etcd's size) holds ~100k typical entries, so rotation (one extra sync
/// plus a directory sync) is rare, and purge can still free space in reasonable steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Smallest segment size accepted (tests use small segments to exercise rotation).
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;

/// Room kept at the start of a segment for its header records (`SegmentStart`, vote, committed,
/// purged; about 100 bytes in practice): a segment started for a record is sized to hold this
/// plus the record.
pub(crate) const SEGMENT_HEADER_BYTES_MAX: u64 = 1024;

const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";

/// File name of segment `seq`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("{PREFIX}{seq:020}{SUFFIX}")
}

/// Path of segment `seq` in `dir`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

/// Sequence number of a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Sequence numbers of the segment files in `dir` on the real file system (empty when the
/// directory does not exist). For observers outside the node — tests and the chaos harness —
/// that watch compaction delete whole segments.
pub fn segment_seqs_in(dir: &Path) -> std::collections::BTreeSet<u64> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| parse_segment_name(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// Sequence numbers of the segments in `dir`, ascending.
pub(crate) fn list_segments(fs: &dyn WalFs, dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs: Vec<u64> = fs
        .list(dir)?
        .iter()
        .filter_map(|name| parse_segment_name(name))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates segment `seq`, preallocated to `bytes`, and makes the file and its directory entry
/// durable (unless `sync` is false: the test-only unsafe mode).
pub(crate) fn create_segment(
    fs: &dyn WalFs,
    dir: &Path,
    seq: u64,
    bytes: u64,
    sync: bool,
) -> io::Result<Arc<dyn WalFile>> {
    let file: Arc<dyn WalFile> = fs.create(&segment_path(dir, seq))?.into();
    file.set_len(bytes)?;
    if sync {
        file.sync_data()?;
        fs.sync_dir(dir)?;
    }
    Ok(file)
}

/// Reads a whole file into memory.
pub(crate) fn read_all(file: &dyn WalFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.size_bytes()?)
        .map_err(|_| io::Error::other("segment larger than memory"))?;
    let mut buf = vec![0u8; len];
    file.read_at(0, &mut buf)?;
    Ok(buf)
}

/// One valid record found by a scan.
#[derive(Debug)]
pub(crate) struct ScannedFrame {
    /// Offset of the frame.
    pub offset: u64,
    /// Length of the frame.
    pub len: u64,
    /// Group-commit metadata.
    pub meta: FrameMeta,
    /// The decoded record.
    pub record: Record,
}

/// What a scan found: the valid prefix, where and why it stopped, and what lies beyond.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Valid records from offset 0, back to back.
    pub frames: Vec<ScannedFrame>,
    /// Offset just past the last valid record: where appending would resume.
    pub end: u64,
    /// Why the scan stopped at `end`: `None` for zero fill (a clean end), else the damage.
    pub damage: Option<String>,
    /// Metadata of valid frames found after `end` (by trying every offset).
    pub stray: Vec<(u64, FrameMeta)>,
    /// One past the last non-zero byte of the file (0 if all zero).
    pub nonzero_end: u64,
}

impl Scan {
    /// Whether anything but zero fill follows the valid prefix.
    pub fn is_damaged(&self) -> bool {
        self.damage.is_some() || self.nonzero_end > self.end
    }
}

/// Scans a segment's bytes. `Err((offset, reason))` is a record with a valid CRC that cannot be
/// decoded: never a torn write, always corruption (or a format this build does not know).
pub(crate) fn scan(buf: &[u8]) -> Result<Scan, (u64, String)> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    let damage = loop {
        match parse_frame(&buf[at..]) {
            Parsed::Frame {
                meta,
                kind,
                body,
                frame_len,
            } => {
                let record = decode_record(kind, body).map_err(|why| (at as u64, why))?;
                frames.push(ScannedFrame {
                    offset: at as u64,
                    len: frame_len,
                    meta,
                    record,
                });
                at += frame_len as usize;
            }
            Parsed::End => break None,
            Parsed::Invalid(why) => break Some(why),
            Parsed::Unsupported(why) => return Err((at as u64, why)),
        }
    };
    let nonzero_end = buf
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1);
    let stray = if nonzero_end > at as u64 {
        find_stray_frames(buf, at + 1)
    } else {
        Vec::new()
    };
    Ok(Scan {
        frames,
        end: at as u64,
        damage,
        stray,
        nonzero_end,
    })
}

/// Finds valid frames at or after `from` by trying every offset that could start one (a frame
/// header holds a non-zero length, so runs of zeros are skipped). Only runs on damaged segments.
fn find_stray_frames(buf: &[u8], from: usize) -> Vec<(u64, FrameMeta)> {
    let mut found = Vec::new();
    let mut at = from;
    while at < buf.len() {
        let Some(skip) = buf[at..].iter().position(|b| *b != 0) else {
            break;
        };
        // The first non-zero byte may be any of the 4 bytes of a length field.
        at = at.max((at + skip).saturating_sub(3));
        match parse_frame(&buf[at..]) {
            Parsed::Frame {
                meta, frame_len, ..
            } => {
                found.push((at as u64, meta));
                at += frame_len as usize;
            }
            Parsed::Unsupported(_) => {
                // A valid CRC: count it as a record of an unknown group, which recovery refuses.
                found.push((
                    at as u64,
                    FrameMeta {
                        group_seq: u64::MAX,
                        last_in_group: false,
                    },
                ));
                at += 1;
            }
            Parsed::End | Parsed::Invalid(_) => at += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::record::{write_frame, EncodedRecord};
    use super::*;

    #[test]
    fn segment_seqs_in_lists_only_segment_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "wal-00000000000000000006.log",
            "wal-00000000000000000012.log",
            "wal-6.log",
            "wal-0000000000000000000x.log",
            "snapshot-1",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let seqs: Vec<u64> = segment_seqs_in(dir.path()).into_iter().collect();
        assert_eq!(seqs, vec![6, 12]);
        assert!(segment_seqs_in(&dir.path().join("missing")).is_empty());
    }

    fn frame(buf: &mut Vec<u8>, seq: u64, group_seq: u64, last: bool) {
        let rec = EncodedRecord::segment_start(seq).unwrap();
        write_frame(
            buf,
            &rec,
            FrameMeta {
                group_seq,
                last_in_group: last,
            },
        );
    }

    #[test]
    fn names_round_trip_and_foreign_files_are_ignored() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-42.log"), None);
        assert_eq!(parse_segment_name("wal-0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
    }

    #[test]
    fn clean_segment_ends_at_zero_fill() {
        let mut buf = Vec::new();
        frame(&mut buf, 1, 1, true);
        let used = buf.len() as u64;
        buf.resize(4096, 0);
        let scan = scan(&buf).unwrap();
        assert_eq!(scan.frames.len(), 1);
        assert_eq!(scan.end, used);
        assert!(!scan.is_damaged());
    }

    #[test]
    fn frames_after_damage_are_found() {
        let mut buf = Vec::new();
        frame(&mut buf, 1, 1, true);
        let torn_at = buf.len();
        frame(&mut buf, 2, 2, false);
        let stray_at = buf.len();
        frame(&mut buf, 3, 2, true);
        buf.resize(8192, 0);
        buf[torn_at + 9] ^= 0xff;
        let scan = scan(&buf).unwrap();
        assert_eq!(scan.end, torn_at as u64);
        assert!(scan.damage.is_some());
        assert_eq!(
            scan.stray,
            vec![(
                stray_at as u64,
                FrameMeta {
                    group_seq: 2,
                    last_in_group: true
                }
            )]
        );
    }
}
