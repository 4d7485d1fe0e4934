//! `--compaction default|aggressive`: the snapshot and WAL flags the harness passes to every node
//! it launches (and, with `aggressive`, a filler memo on every workload transfer so the WAL
//! grows fast). `aggressive` makes nodes snapshot, purge their log and delete whole WAL segments
//! many times a minute, so a drill exercises log compaction, snapshot install and restarts of
//! nodes whose WAL has been cut down repeatedly (the `compaction` checker then demands evidence
//! from each node's WAL directory that this happened).

use serde::Serialize;

/// How often launched nodes compact their log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Compaction {
    /// Snapshots every few thousand entries with the default 64 MiB WAL segments: a drill sees
    /// a few snapshots and purges but rarely deletes a segment.
    #[default]
    Default,
    /// 64 KiB WAL segments and a snapshot every few hundred entries: every node deletes WAL
    /// segments many times per drill.
    Aggressive,
}

/// Snapshot threshold of `default` (entries).
const DEFAULT_SNAPSHOT_EVERY_ENTRIES: &str = "2000";
/// Entries kept after a snapshot with `default`.
const DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT: &str = "300";
/// Snapshot threshold of `aggressive` (entries): a drill's workload commits this many within
/// a few seconds.
const AGGRESSIVE_SNAPSHOT_EVERY_ENTRIES: &str = "200";
/// Entries kept after a snapshot with `aggressive`: a node down for a fault's hold usually
/// falls behind the purge point and catches up by snapshot install.
const AGGRESSIVE_LOGS_KEPT_AFTER_SNAPSHOT: &str = "50";
/// WAL segment size of `aggressive` (bytes): the node's minimum, a few hundred entries.
pub const AGGRESSIVE_WAL_SEGMENT_BYTES: u64 = 65_536;
/// Filler memo on every workload transfer with `aggressive` (bytes, within the ledger's
/// 512-byte memo limit): a bare transfer is a few dozen bytes in the WAL, so without it a 64 KiB
/// segment holds over a thousand entries and a one-minute drill fills only a handful.
pub const AGGRESSIVE_TRANSFER_MEMO_BYTES: usize = 256;
/// Segment-deletion events each node must show in an `aggressive` drill (checker
/// `compaction`): two, since a second segment-deleting purge is what first makes a WAL's
/// surviving segment headers disagree with its deleted history.
pub const AGGRESSIVE_DELETION_EVENTS_MIN: u64 = 2;

impl Compaction {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Aggressive => "aggressive",
        }
    }

    /// Flags for every launched node.
    pub fn node_args(self) -> Vec<String> {
        let (every, kept) = match self {
            Self::Default => (
                DEFAULT_SNAPSHOT_EVERY_ENTRIES,
                DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT,
            ),
            Self::Aggressive => (
                AGGRESSIVE_SNAPSHOT_EVERY_ENTRIES,
                AGGRESSIVE_LOGS_KEPT_AFTER_SNAPSHOT,
            ),
        };
        let mut args = vec![
            "--snapshot-every-entries".to_owned(),
            every.to_owned(),
            "--logs-kept-after-snapshot".to_owned(),
            kept.to_owned(),
        ];
        if self == Self::Aggressive {
            args.extend([
                "--wal-segment-bytes".to_owned(),
                AGGRESSIVE_WAL_SEGMENT_BYTES.to_string(),
            ]);
        }
        args
    }

    /// Length of the filler memo the workload puts on every transfer (0: none).
    pub fn transfer_memo_bytes(self) -> usize {
        match self {
            Self::Default => 0,
            Self::Aggressive => AGGRESSIVE_TRANSFER_MEMO_BYTES,
        }
    }

    /// Segment-deletion events each node must show for the `compaction` checker to pass
    /// (0: no demand).
    pub fn deletion_events_min(self) -> u64 {
        match self {
            Self::Default => 0,
            Self::Aggressive => AGGRESSIVE_DELETION_EVENTS_MIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(args: &[String], name: &str) -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    }

    #[test]
    fn aggressive_flags_are_small_and_accepted_by_the_node() {
        let a = Compaction::Aggressive.node_args();
        let seg = flag(&a, "--wal-segment-bytes").expect("segment flag");
        assert!(
            seg >= node::wal::SEGMENT_BYTES_MIN,
            "below the node's minimum"
        );
        assert!(seg < node::wal::SEGMENT_BYTES_DEFAULT);
        let every = flag(&a, "--snapshot-every-entries").expect("snapshot flag");
        let kept = flag(&a, "--logs-kept-after-snapshot").expect("kept flag");
        let d = Compaction::Default.node_args();
        assert!(every < flag(&d, "--snapshot-every-entries").expect("default snapshot flag"));
        assert!(kept < every);
        assert!(Compaction::Aggressive.deletion_events_min() >= 2);
        let memo = Compaction::Aggressive.transfer_memo_bytes();
        assert!(memo > 0 && memo <= 512, "within the ledger's memo limit");
    }

    #[test]
    fn default_keeps_the_node_default_segment_size() {
        let d = Compaction::Default.node_args();
        assert_eq!(flag(&d, "--wal-segment-bytes"), None);
        assert_eq!(flag(&d, "--snapshot-every-entries"), Some(2000));
        assert_eq!(flag(&d, "--logs-kept-after-snapshot"), Some(300));
        assert_eq!(Compaction::Default.deletion_events_min(), 0);
        assert_eq!(Compaction::Default.transfer_memo_bytes(), 0);
        assert_eq!(Compaction::default(), Compaction::Default);
    }
}
