//! Torn tail versus corruption, on real files damaged by hand.
//!
//! A record cut short or garbled at the end of the log (what a power cut mid-write leaves) is
//! dropped on open and everything before it stays. Damage that was followed by a later synced
//! commit round, damage in a closed segment, or a record in an unknown format is corruption: the
//! WAL refuses to open.
//!
//! The tests walk frames with the documented layout: `[len u32 LE][crc32c u32 LE][payload]`,
//! payload = `[version][kind][group_seq u64][flags][body]`.

mod wal_support;

use node::log_store::LogStore;
use openraft::storage::RaftLogStorage;
use std::io;
use std::path::Path;
use wal_support::{all_entries, append_durable, entries, entry, log_id, open, segment_paths};

/// Writes `0..n`, one commit round (one fsync) per entry, and closes the store.
async fn write_one_round_per_entry(dir: &Path, n: u64) {
    let mut store = open(dir).unwrap();
    for i in 0..n {
        append_durable(&mut store, vec![entry(1, i)]).await;
    }
}

/// `(offset, frame length)` of every record of a segment file.
fn frames(path: &Path) -> Vec<(usize, usize)> {
    let buf = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= buf.len() {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((at, 8 + len));
        at += 8 + len;
    }
    out
}

/// Payload `kind` byte of an entry record.
const ENTRY_KIND: u8 = 2;

fn patch(path: &Path, offset: usize, bytes: &[u8]) {
    let mut buf = std::fs::read(path).unwrap();
    buf[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, buf).unwrap();
}

fn assert_refused(result: io::Result<LogStore>) {
    match result {
        Ok(_) => panic!("a corrupt wal was opened"),
        Err(e) => assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidData,
            "unexpected error: {e}"
        ),
    }
}

#[tokio::test]
async fn a_record_cut_short_at_the_tail_is_dropped_and_earlier_entries_remain() {
    let dir = tempfile::tempdir().unwrap();
    write_one_round_per_entry(dir.path(), 10).await;
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, len) = *frames(&path).last().unwrap();
    // The last few bytes of the last record never reached the disk.
    patch(&path, offset + len - 3, &[0, 0, 0]);

    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(1, 0..9));
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 8))
    );

    // The repaired log takes new writes, and a second restart sees them.
    append_durable(&mut store, entries(2, 9..12)).await;
    drop(store);
    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(1, 0..9);
    expected.extend(entries(2, 9..12));
    assert_eq!(all_entries(&mut store).await, expected);
}

#[tokio::test]
async fn a_garbled_header_at_the_tail_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write_one_round_per_entry(dir.path(), 6).await;
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, _) = *frames(&path).last().unwrap();
    // A length pointing far past the end of the segment: the write was torn in its header.
    patch(&path, offset, &0x00ff_ff00u32.to_le_bytes());

    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(1, 0..5));
}

#[tokio::test]
async fn damage_in_the_last_round_drops_the_round_from_the_damage_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 0..5)).await;
        append_durable(&mut store, entries(1, 5..15)).await;
    }
    let path = segment_paths(dir.path()).pop().unwrap();
    let all = frames(&path);
    // Records: segment start, then entries 0..15. Damage entry 8 (the round of 5..15), as if
    // its page never reached the disk while later pages of the same round did.
    let (offset, len) = all[1 + 8];
    patch(&path, offset + len / 2, &[0xAA; 4]);

    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(1, 0..8));
}

#[tokio::test]
async fn rounds_written_after_a_repaired_tail_are_judged_against_a_closed_round() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 0..5)).await;
        append_durable(&mut store, entries(1, 5..10)).await;
    }
    let path = segment_paths(dir.path()).pop().unwrap();
    // Records: segment start, entries 0..10. Tear the second round at entry 7.
    let (torn_at, _) = frames(&path)[1 + 7];
    patch(&path, torn_at + 9, &[0x77]);
    {
        let mut store = open(dir.path()).unwrap();
        assert_eq!(all_entries(&mut store).await, entries(1, 0..7));
        append_durable(&mut store, entries(2, 7..12)).await;
    }
    // New records start where the torn one was: the open's round-end marker, then entries
    // 7..12 of term 2 in one round. Tear that round at its first entry: still a torn tail, not
    // corruption, although the round before it (entries 5..7) was cut short and never closed.
    let bytes = std::fs::read(&path).unwrap();
    let (offset, _) = frames(&path)
        .into_iter()
        .find(|(at, _)| *at >= torn_at && bytes[at + 9] == ENTRY_KIND)
        .unwrap();
    patch(&path, offset + 9, &[0x77]);
    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(1, 0..7));
}

#[tokio::test]
async fn damage_followed_by_a_later_synced_round_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_one_round_per_entry(dir.path(), 10).await;
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, len) = frames(&path)[1 + 3];
    patch(&path, offset + len - 2, &[0x55]);
    assert_refused(open(dir.path()));
}

#[tokio::test]
async fn damage_followed_by_a_round_that_skips_one_is_refused() {
    // One entry per round; entry 8 damaged, entry 9 (two rounds after entry 7's) intact:
    // entry 8's round was synced before entry 9's was written.
    let dir = tempfile::tempdir().unwrap();
    write_one_round_per_entry(dir.path(), 10).await;
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, _) = frames(&path)[1 + 8];
    patch(&path, offset + 9, &[0x77]);
    assert_refused(open(dir.path()));
}

#[tokio::test]
async fn damage_followed_by_the_rest_of_its_round_and_a_later_round_is_refused() {
    // Rounds of two entries; the first entry of round [4, 5] is damaged while entry 5 (same
    // round) and rounds after it are intact: that round was synced, so this is corruption.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        for start in (0..10).step_by(2) {
            append_durable(&mut store, entries(1, start..start + 2)).await;
        }
    }
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, _) = frames(&path)[1 + 4];
    patch(&path, offset + 9, &[0x77]);
    assert_refused(open(dir.path()));
}

#[tokio::test]
async fn garbage_after_the_end_of_a_closed_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        for start in (0..6000).step_by(100) {
            append_durable(&mut store, entries(1, start..start + 100)).await;
        }
    }
    let first = &segment_paths(dir.path())[0];
    let (offset, len) = *frames(first).last().unwrap();
    let size = std::fs::metadata(first).unwrap().len() as usize;
    assert!(offset + len + 4 <= size - 4, "no zero fill left to damage");
    // A closed segment was synced whole, with zero fill after its last record.
    patch(first, size - 4, b"junk");
    assert_refused(open(dir.path()));
}

#[tokio::test]
async fn damage_in_a_closed_segment_is_refused_even_at_its_end() {
    for damage_last_record in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = open(dir.path()).unwrap();
            for start in (0..6000).step_by(100) {
                append_durable(&mut store, entries(1, start..start + 100)).await;
            }
        }
        let all = segment_paths(dir.path());
        assert!(
            all.len() >= 3,
            "test needs closed segment_paths, got {}",
            all.len()
        );
        let first = &all[0];
        let records = frames(first);
        let (offset, len) = if damage_last_record {
            *records.last().unwrap()
        } else {
            records[records.len() / 2]
        };
        patch(first, offset + len - 1, &[0x01]);
        assert_refused(open(dir.path()));
    }
}

#[tokio::test]
async fn a_record_in_an_unknown_format_is_refused_even_at_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_one_round_per_entry(dir.path(), 4).await;
    let path = segment_paths(dir.path()).pop().unwrap();
    let (offset, len) = *frames(&path).last().unwrap();
    let mut payload = std::fs::read(&path).unwrap()[offset + 8..offset + len].to_vec();
    payload[0] = 99; // format version from the future, with a valid crc
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    patch(&path, offset, &frame);
    assert_refused(open(dir.path()));
}
