//! Encoded size of commands, measured with the encoding the WAL writes (bincode 2, standard
//! config) by counting bytes instead of allocating them. Entries are bounded by this size so a
//! client can never produce a log record the WAL refuses: a refused append is a storage error,
//! which stops the leader's Raft core.
//!
//! The count is an upper bound of what a command adds to its entry: commands are measured
//! before the leader stamps them, and a stamp can grow `timestamp_us` by [`STAMP_BYTES`].

use ledger::Command;

/// Most bytes a leader stamp adds to a command: `timestamp_us` goes from 0 (a 1-byte varint)
/// to a 9-byte varint at most.
pub const STAMP_BYTES: u64 = 8;

/// Bytes of an entry besides its commands: log id (term, leader, index as varints), payload
/// tag and the command count. Generous: the exact figure is under 40.
pub const ENTRY_OVERHEAD_BYTES: u64 = 256;

/// Upper bound of the bytes `command` adds to an entry once stamped.
pub fn command_bytes(command: &Command) -> u64 {
    let mut size = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(command, &mut size, bincode::config::standard()) {
        Ok(()) => size.bytes_written as u64 + STAMP_BYTES,
        // Encoding a command cannot fail (no maps with non-string keys, no unsized data); if it
        // ever did, the WAL could not write it either: count it as too large.
        Err(_) => u64::MAX / 2,
    }
}

/// Upper bound of the bytes `commands` add to an entry once stamped.
pub fn commands_bytes(commands: &[Command]) -> u64 {
    commands.iter().map(command_bytes).sum()
}

/// True when an entry holding commands of `bytes` (see [`commands_bytes`]) fits `max`.
pub fn fits_entry(bytes: u64, max: u64) -> bool {
    bytes.saturating_add(ENTRY_OVERHEAD_BYTES) <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::{Entry, EntryPayload, LedgerRequest, TypeConfig};
    use ledger::{AccountId, CommandBody, Currency};

    fn open(i: usize, metadata_bytes: usize) -> Command {
        Command {
            id: format!("cmd-{i}"),
            timestamp_us: 0,
            body: CommandBody::OpenAccount {
                account: AccountId::parse(&format!("acct-{i}")).unwrap(),
                currency: Currency::parse("USD").unwrap(),
                overdraft_limit: 0,
                metadata: "m".repeat(metadata_bytes),
            },
        }
    }

    #[test]
    fn the_bound_covers_the_encoded_entry_after_stamping() {
        let mut commands: Vec<Command> = (0..300).map(|i| open(i, 4000)).collect();
        commands.push(Command {
            id: "batch".into(),
            timestamp_us: 0,
            body: CommandBody::Batch {
                atomic: true,
                commands: (300..400).map(|i| open(i, 100)).collect(),
            },
        });
        let bound = commands_bytes(&commands) + ENTRY_OVERHEAD_BYTES;
        for c in commands.iter_mut() {
            c.timestamp_us = u64::MAX;
        }
        let entry = Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(u64::MAX, u64::MAX, u64::MAX),
            payload: EntryPayload::Normal(LedgerRequest { commands }),
        };
        let exact = bincode::serde::encode_to_vec(&entry, bincode::config::standard())
            .unwrap()
            .len() as u64;
        assert!(exact <= bound, "encoded {exact} > bound {bound}");
        assert!(bound - exact < ENTRY_OVERHEAD_BYTES + 401 * STAMP_BYTES);
    }

    #[test]
    fn fits_entry_leaves_room_for_the_overhead() {
        assert!(fits_entry(1000, 1000 + ENTRY_OVERHEAD_BYTES));
        assert!(!fits_entry(1001, 1000 + ENTRY_OVERHEAD_BYTES));
        assert!(!fits_entry(u64::MAX, super::super::ENTRY_BYTES_MAX_LIMIT));
    }
}
