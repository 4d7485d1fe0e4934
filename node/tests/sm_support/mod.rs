//! Helpers shared by the `sm_*` state-machine tests: entry builders, a seeded bank workload, and
//! a brute-force replay of the event list (the oracle for time travel, L8).

#![allow(dead_code)]

use ledger::{AccountId, Command, CommandBody, Currency, Event, EventKind};
use node::raft_types::{Entry, EntryPayload, LedgerRequest, LogId, TypeConfig};
use node::sm::{BalanceAt, LedgerReader, StateMachineStore};
use openraft::storage::RaftStateMachine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

/// Log id with term 1, leader 1.
pub fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

/// A normal entry carrying `commands`.
pub fn normal(index: u64, commands: Vec<Command>) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(LedgerRequest { commands }),
    }
}

/// A blank entry.
pub fn blank(index: u64) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Blank,
    }
}

/// A membership entry with voters `voters`.
pub fn membership(index: u64, voters: &[u64]) -> Entry {
    let set: BTreeSet<u64> = voters.iter().copied().collect();
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Membership(openraft::Membership::new_with_defaults(vec![set], [])),
    }
}

/// Applies `entries` without client responders (as a follower or a log replay does).
pub async fn apply(store: &mut StateMachineStore, entries: Vec<Entry>) {
    try_apply(store, entries).await.expect("apply");
}

/// Applies `entries` like [`apply`], returning the state machine's answer (an `Err` is the
/// storage error that stops openraft's core).
pub async fn try_apply(store: &mut StateMachineStore, entries: Vec<Entry>) -> std::io::Result<()> {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    store.apply(futures::stream::iter(items)).await
}

/// Builds a snapshot of the store's current applied state.
pub async fn build_snapshot(store: &mut StateMachineStore) -> node::raft_types::Snapshot {
    use openraft::storage::RaftSnapshotBuilder;
    store
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot")
}

/// Installs into `into` the snapshot `from` serves (a full file, expanded from its local file
/// and history, as a peer would receive it); checks it is the snapshot `built`.
pub async fn install_served(
    from: &mut StateMachineStore,
    into: &mut StateMachineStore,
    built: &node::raft_types::Snapshot,
) {
    use openraft::storage::RaftStateMachine;
    let served = from.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(served.meta, built.meta);
    into.install_snapshot(&served.meta, served.snapshot)
        .await
        .unwrap();
}

/// Reopens the store under `dir` and replays `log` after the applied state it reports, the way
/// openraft brings a restarted state machine forward (the ledger itself is only persisted in
/// snapshots; the durable log is replayed on top).
pub async fn reopen_and_replay(dir: &std::path::Path, log: &[Entry]) -> StateMachineStore {
    let mut store = StateMachineStore::open(dir).expect("reopen");
    let applied = store.applied_state().await.expect("applied state").0;
    let rest: Vec<Entry> = log
        .iter()
        .filter(|e| applied.is_none_or(|a| e.log_id.index > a.index))
        .cloned()
        .collect();
    apply(&mut store, rest).await;
    store
}

/// Account id.
pub fn acct(s: &str) -> AccountId {
    AccountId::parse_any(s).expect("account id")
}

/// A command.
pub fn cmd(id: &str, ts_us: u64, body: CommandBody) -> Command {
    Command {
        id: id.to_owned(),
        timestamp_us: ts_us,
        body,
    }
}

/// Seeded bank workload: opens `accounts` USD accounts, then produces entries of 1..=4
/// commands each (deposits, withdrawals, transfers that may be refused, two-phase transfers
/// posted or voided, batches, freezes, retries and ticks), with leader timestamps that mostly
/// rise by random gaps and sometimes go backwards (the ledger clamps them).
pub struct Workload {
    /// RNG.
    rng: StdRng,
    /// Client account ids.
    pub accounts: Vec<AccountId>,
    /// Next log index.
    pub next_index: u64,
    /// Last leader stamp.
    ts_us: u64,
    /// Commands issued (for unique ids and retries).
    issued: Vec<Command>,
    /// Pending transfer ids not yet completed.
    pending: Vec<String>,
}

impl Workload {
    /// A workload starting at log index `first_index`.
    pub fn new(seed: u64, accounts: usize, first_index: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            accounts: (0..accounts).map(|i| acct(&format!("acc-{i}"))).collect(),
            next_index: first_index,
            ts_us: 1_700_000_000_000_000,
            issued: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The entry opening every account and funding each with a deposit.
    pub fn opening_entry(&mut self) -> Entry {
        let usd = Currency::parse("USD").expect("usd");
        let mut commands = Vec::new();
        for (i, a) in self.accounts.clone().iter().enumerate() {
            let ts = self.stamp();
            let body = CommandBody::OpenAccount {
                account: a.clone(),
                currency: usd,
                overdraft_limit: if i % 3 == 0 { 50 } else { 0 },
                metadata: "{}".to_owned(),
            };
            commands.push(cmd(&format!("open-{i}"), ts, body));
            let ts = self.stamp();
            let body = CommandBody::Deposit {
                account: a.clone(),
                amount: 1_000,
            };
            commands.push(cmd(&format!("fund-{i}"), ts, body));
        }
        self.entry(commands)
    }

    /// The next entry of random commands.
    pub fn next_entry(&mut self) -> Entry {
        let n = self.rng.random_range(1..=4);
        let commands = (0..n).map(|_| self.next_command()).collect();
        self.entry(commands)
    }

    /// A blank entry at the next index (as a new leader appends).
    pub fn blank_entry(&mut self) -> Entry {
        let e = blank(self.next_index);
        self.next_index += 1;
        e
    }

    fn entry(&mut self, commands: Vec<Command>) -> Entry {
        let e = normal(self.next_index, commands);
        self.next_index += 1;
        e
    }

    fn stamp(&mut self) -> u64 {
        if self.rng.random_ratio(1, 10) {
            // A new leader with a slower clock: the ledger clamps to last + 1.
            self.ts_us = self.ts_us.saturating_sub(self.rng.random_range(1..5_000));
        } else {
            self.ts_us += self.rng.random_range(1..2_000_000);
        }
        self.ts_us
    }

    fn pick(&mut self) -> AccountId {
        let i = self.rng.random_range(0..self.accounts.len());
        self.accounts[i].clone()
    }

    /// Two accounts, different except now and then (to exercise that rejection too).
    fn pick_pair(&mut self) -> (AccountId, AccountId) {
        let from = self.pick();
        let mut to = self.pick();
        while to == from && !self.rng.random_ratio(1, 20) {
            to = self.pick();
        }
        (from, to)
    }

    fn next_command(&mut self) -> Command {
        let ts = self.stamp();
        let id = format!("c{}", self.issued.len());
        let roll = self.rng.random_range(0..100);
        let body = match roll {
            0..=9 => CommandBody::Deposit {
                account: self.pick(),
                amount: self.rng.random_range(1..500),
            },
            10..=17 => CommandBody::Withdraw {
                account: self.pick(),
                amount: self.rng.random_range(1..800),
            },
            18..=27 => {
                let (from, to) = self.pick_pair();
                let amount = self.rng.random_range(1..300);
                self.pending.push(id.clone());
                CommandBody::Transfer {
                    from,
                    to,
                    amount,
                    pending: true,
                    timeout_s: if self.rng.random_bool(0.5) {
                        Some(2)
                    } else {
                        None
                    },
                    memo: Some("hold".to_owned()),
                }
            }
            28..=35 if !self.pending.is_empty() => {
                let i = self.rng.random_range(0..self.pending.len());
                let transfer_id = self.pending.swap_remove(i);
                if self.rng.random_bool(0.5) {
                    CommandBody::PostPending { transfer_id }
                } else {
                    CommandBody::VoidPending { transfer_id }
                }
            }
            36..=39 => {
                let a = self.pick();
                // Unfreeze more often than freeze, so most accounts stay usable.
                if roll == 36 {
                    CommandBody::Freeze { account: a }
                } else {
                    CommandBody::Unfreeze { account: a }
                }
            }
            40..=44 if !self.issued.is_empty() => {
                // A client retry: same id, same body, new stamp.
                let i = self.rng.random_range(0..self.issued.len());
                let old = self.issued[i].clone();
                return Command {
                    timestamp_us: ts,
                    ..old
                };
            }
            45..=49 => {
                let inner = (0..self.rng.random_range(1..=3))
                    .map(|k| {
                        let (from, to) = self.pick_pair();
                        let body = CommandBody::Transfer {
                            from,
                            to,
                            amount: self.rng.random_range(1..200),
                            pending: false,
                            timeout_s: None,
                            memo: None,
                        };
                        cmd(&format!("{id}.{k}"), ts, body)
                    })
                    .collect();
                CommandBody::Batch {
                    atomic: self.rng.random_bool(0.5),
                    commands: inner,
                }
            }
            50..=52 => CommandBody::Tick,
            _ => {
                let (from, to) = self.pick_pair();
                CommandBody::Transfer {
                    from,
                    to,
                    amount: self.rng.random_range(1..400),
                    pending: false,
                    timeout_s: None,
                    memo: None,
                }
            }
        };
        let c = cmd(&id, ts, body);
        self.issued.push(c.clone());
        c
    }
}

/// Every event, read through the reader in pages.
pub fn all_events(reader: &LedgerReader) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let from = out.last().map_or(1, |e| e.seq + 1);
        let page = reader.events_from(from, 1000).expect("events_from");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Brute-force balance of `account` after every event that `include` admits (L8's definition),
/// with the position (`as_of`, index, seq) of the last admitted event concerning the account.
pub fn replay_balance(
    events: &[Event],
    account: &AccountId,
    include: impl Fn(&Event) -> bool,
) -> Option<BalanceAt> {
    let mut at: Option<BalanceAt> = None;
    for e in events.iter().filter(|e| include(e)) {
        if !e.kind.accounts().contains(&account) {
            continue;
        }
        let mut balance = match &e.kind {
            EventKind::AccountOpened { .. } => 0,
            _ => at.map_or(0, |b| b.balance),
        };
        for (a, after) in e.kind.balance_changes() {
            if a == account {
                balance = after;
            }
        }
        at = Some(BalanceAt {
            balance,
            as_of_us: e.timestamp_us,
            index: e.index,
            event_seq: e.seq,
        });
    }
    at
}

/// Accounts touched by `events` (system accounts included).
pub fn accounts_in(events: &[Event]) -> BTreeSet<AccountId> {
    events
        .iter()
        .flat_map(|e| e.kind.accounts().into_iter().cloned())
        .collect()
}

/// Everything a reader can answer, at the current applied index.
pub fn fingerprint(reader: &LedgerReader) -> impl PartialEq + std::fmt::Debug {
    let events = all_events(reader);
    let mut history = Vec::new();
    for account in accounts_in(&events) {
        let per_account = reader.account_events(&account, 0, usize::MAX).unwrap();
        let mut points = Vec::new();
        for e in events.iter().step_by(7) {
            points.push(reader.balance_at_time(&account, e.timestamp_us).unwrap());
            points.push(reader.balance_at_index(&account, e.index).unwrap());
        }
        history.push((account, per_account, points));
    }
    // Every command that emitted an event: its recorded result and, for transfers, the
    // transfer — wherever the node keeps them (memory or the cold history on disk).
    let ids: BTreeSet<&str> = events.iter().map(|e| e.command_id.as_str()).collect();
    let records: Vec<_> = ids
        .into_iter()
        .map(|id| (reader.command_result(id), reader.transfer(id)))
        .collect();
    (
        reader.state_hash(),
        reader.applied_hash(),
        reader.all_accounts(),
        reader.last_timestamp_us(),
        events,
        history,
        records,
    )
}
