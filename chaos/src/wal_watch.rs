//! Evidence of log compaction, read from the outside: a sampler lists every owned node's
//! `<data>/wal/` directory while the drill runs. WAL segments are named `wal-<seq:020>.log` with a
//! sequence number that only grows, and a purge after a snapshot deletes a prefix of whole
//! segments, so each rise of the lowest sequence number present is one segment-deletion event
//! (two purges between two samples count once: a lower bound). A wiped data directory starts
//! over without counting as a deletion.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Interval between two listings of the WAL directories.
const SAMPLE_INTERVAL_MS: u64 = 100;

/// What the sampler saw of one node's WAL directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WalEvidence {
    /// Samples in which the lowest segment sequence number rose (segments deleted by a purge).
    pub deletion_events: u64,
    /// Segments seen and later deleted by such a purge.
    pub segments_deleted: u64,
    /// Times the directory started over (wiped: emptied, or its lowest sequence number fell).
    pub resets: u64,
    /// Most segment files present at once.
    pub files_max: usize,
    /// Segment sequence numbers present at the last sample.
    pub present: BTreeSet<u64>,
}

impl WalEvidence {
    /// Folds one listing of the directory in.
    pub fn observe(&mut self, now: BTreeSet<u64>) {
        match (self.present.first(), now.first()) {
            (Some(&before), Some(&after)) if after > before => {
                self.deletion_events += 1;
                self.segments_deleted += self.present.range(..after).count() as u64;
            }
            (Some(&before), Some(&after)) if after < before => self.resets += 1,
            (Some(_), None) => self.resets += 1,
            _ => {}
        }
        self.files_max = self.files_max.max(now.len());
        self.present = now;
    }
}

/// Samples `dirs` (node id -> `<data>/wal`) until `stop`, then takes one last sample; the task
/// returns the evidence by node id.
pub fn spawn(
    dirs: BTreeMap<u64, PathBuf>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<BTreeMap<u64, WalEvidence>> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<u64, WalEvidence> = BTreeMap::new();
        loop {
            for (id, dir) in &dirs {
                seen.entry(*id)
                    .or_default()
                    .observe(node::wal::segment_seqs_in(dir));
            }
            if *stop.borrow() {
                return seen;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(SAMPLE_INTERVAL_MS)) => {}
                _ = stop.changed() => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn purges_count_and_wipes_reset() {
        let mut e = WalEvidence::default();
        for s in [
            &[1][..],
            &[1, 2],
            &[1, 2, 3],
            &[3],
            &[3, 4],
            &[4, 5],
            &[4, 5],
        ] {
            e.observe(set(s));
        }
        assert_eq!(
            (e.deletion_events, e.segments_deleted, e.files_max),
            (2, 3, 3)
        );
        e.observe(set(&[])); // wiped
        e.observe(set(&[1]));
        e.observe(set(&[1, 2]));
        assert_eq!((e.deletion_events, e.resets), (2, 1));
        e.observe(set(&[0])); // wiped and refilled between two samples
        assert_eq!((e.deletion_events, e.resets), (2, 2));
        e.observe(set(&[2]));
        assert_eq!((e.deletion_events, e.segments_deleted), (3, 4));
    }

    #[tokio::test]
    async fn samples_a_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let name = |s: u64| dir.join(format!("wal-{s:020}.log"));
        std::fs::write(name(1), b"").expect("seg 1");
        std::fs::write(name(2), b"").expect("seg 2");
        let (tx, rx) = watch::channel(false);
        let task = spawn(BTreeMap::from([(7, dir.clone())]), rx);
        tokio::time::sleep(Duration::from_millis(2 * SAMPLE_INTERVAL_MS)).await;
        std::fs::remove_file(name(1)).expect("purge");
        tokio::time::sleep(Duration::from_millis(2 * SAMPLE_INTERVAL_MS)).await;
        tx.send(true).expect("stop");
        let seen = task.await.expect("task");
        assert_eq!(seen[&7].deletion_events, 1);
        assert_eq!(seen[&7].present, set(&[2]));
    }
}
