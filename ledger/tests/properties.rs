//! Property tests: random command sequences over a few accounts, currencies and a small pool of
//! (colliding) command ids keep L1/L2 and the internal consistency checks after every command,
//! number events densely, replay stored results on retry, and are deterministic under replay
//! and under restore-then-continue; and where history lives (memory tiers, cold history, a
//! restart with only the working set) never changes any of it.

use ledger::idempotency::fingerprint;
use ledger::{
    Account, AccountId, Applied, ColdHistory, Command, CommandBody, CommandResult, Currency,
    EventKind, IdempotencyEntry, LedgerState, Outcome, Rejection, RestoreParts, Transfer,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Few names so that commands collide on accounts.
const ACCOUNTS: [&str; 5] = ["A", "B", "C", "D", "E"];

fn account() -> impl Strategy<Value = AccountId> {
    prop::sample::select(ACCOUNTS.to_vec()).prop_map(|a| AccountId::parse(a).expect("valid"))
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 1i64..400,
        1 => -2i64..=0,
        1 => (i64::MAX - 100)..=i64::MAX,
    ]
}

/// A command body whose two-phase target is still symbolic: `PostPending`/`VoidPending` carry
/// `"#k"`, resolved to the k-th most recent pending transfer when the list is built.
fn simple_body() -> impl Strategy<Value = CommandBody> {
    let currency =
        prop::sample::select(vec!["USD", "EUR"]).prop_map(|c| Currency::parse(c).expect("valid"));
    let target = (0usize..3).prop_map(|k| format!("#{k}"));
    prop_oneof![
        1 => (account(), currency, -1i64..100).prop_map(|(account, currency, overdraft_limit)| {
            CommandBody::OpenAccount { account, currency, overdraft_limit, metadata: "{}".to_owned() }
        }),
        3 => (account(), amount()).prop_map(|(account, amount)| CommandBody::Deposit { account, amount }),
        2 => (account(), amount()).prop_map(|(account, amount)| CommandBody::Withdraw { account, amount }),
        6 => (account(), account(), amount(), any::<bool>(), prop::option::of(0u64..4)).prop_map(
            |(from, to, amount, pending, timeout_s)| CommandBody::Transfer {
                from, to, amount, pending, timeout_s, memo: None,
            }
        ),
        2 => target.clone().prop_map(|transfer_id| CommandBody::PostPending { transfer_id }),
        1 => target.prop_map(|transfer_id| CommandBody::VoidPending { transfer_id }),
        1 => account().prop_map(|account| CommandBody::Freeze { account }),
        1 => account().prop_map(|account| CommandBody::Unfreeze { account }),
        1 => account().prop_map(|account| CommandBody::Close { account }),
    ]
}

/// One generated step.
#[derive(Debug, Clone)]
enum Step {
    /// A new command (fresh id); batches hold fresh inner commands.
    New(CommandBody),
    /// The exact earlier top-level command `k % len` again.
    Retry(usize),
    /// An earlier command's id with another body.
    Reuse(usize, CommandBody),
}

fn step() -> impl Strategy<Value = Step> {
    let batch =
        (any::<bool>(), prop::collection::vec(simple_body(), 1..4)).prop_map(|(atomic, bodies)| {
            let commands = bodies
                .into_iter()
                .map(|body| Command {
                    id: String::new(),
                    timestamp_us: 0,
                    body,
                })
                .collect();
            CommandBody::Batch { atomic, commands }
        });
    prop_oneof![
        12 => simple_body().prop_map(Step::New),
        1 => Just(Step::New(CommandBody::Tick)),
        2 => batch.prop_map(Step::New),
        2 => any::<usize>().prop_map(Step::Retry),
        1 => (any::<usize>(), simple_body()).prop_map(|(k, body)| Step::Reuse(k, body)),
    ]
}

/// Opens the five accounts (two currencies, one with an overdraft) and funds all but E.
fn prelude() -> Vec<Command> {
    let usd = Currency::parse("USD").expect("valid");
    let eur = Currency::parse("EUR").expect("valid");
    let mut out = Vec::new();
    for (name, currency, overdraft_limit) in [
        ("A", usd, 0),
        ("B", usd, 50),
        ("C", eur, 0),
        ("D", usd, 0),
        ("E", usd, 0),
    ] {
        let account = AccountId::parse(name).expect("valid");
        let open = CommandBody::OpenAccount {
            account: account.clone(),
            currency,
            overdraft_limit,
            metadata: "{}".to_owned(),
        };
        out.push(Command {
            id: format!("open-{name}"),
            timestamp_us: 0,
            body: open,
        });
        if name == "E" {
            continue;
        }
        let deposit = CommandBody::Deposit {
            account,
            amount: 500,
        };
        out.push(Command {
            id: format!("fund-{name}"),
            timestamp_us: 0,
            body: deposit,
        });
    }
    out
}

/// Builds the command list: fresh ids by position, symbolic two-phase targets resolved, and
/// leader stamps that mostly advance (by up to 3 s) and sometimes go back.
fn build(steps: Vec<(Step, i64)>) -> Vec<Command> {
    let mut out = prelude();
    let mut pending_ids: Vec<String> = Vec::new();
    let mut stamp: u64 = 1_000_000;
    for (position, (step, delta_us)) in steps.into_iter().enumerate() {
        stamp = stamp.saturating_add_signed(delta_us);
        let mut resolve = |id: String, body: CommandBody| -> Command {
            let body = match body {
                CommandBody::PostPending { transfer_id } => CommandBody::PostPending {
                    transfer_id: target(&pending_ids, &transfer_id),
                },
                CommandBody::VoidPending { transfer_id } => CommandBody::VoidPending {
                    transfer_id: target(&pending_ids, &transfer_id),
                },
                other => other,
            };
            if let CommandBody::Transfer { pending: true, .. } = body {
                pending_ids.push(id.clone());
            }
            Command {
                id,
                timestamp_us: stamp,
                body,
            }
        };
        let cmd = match step {
            Step::New(CommandBody::Batch { atomic, commands }) => {
                let commands = (0..)
                    .zip(commands)
                    .map(|(j, c)| resolve(format!("c{position}.{j}"), c.body))
                    .collect();
                Command {
                    id: format!("c{position}"),
                    timestamp_us: stamp,
                    body: CommandBody::Batch { atomic, commands },
                }
            }
            Step::New(body) => resolve(format!("c{position}"), body),
            Step::Retry(k) => Command {
                timestamp_us: stamp,
                ..out[k % out.len()].clone()
            },
            Step::Reuse(k, body) => resolve(out[k % out.len()].id.clone(), body),
        };
        out.push(cmd);
    }
    out
}

/// `"#k"` -> the k-th most recent pending transfer id (or a missing one).
fn target(pending_ids: &[String], symbolic: &str) -> String {
    let k: usize = symbolic.trim_start_matches('#').parse().unwrap_or(0);
    pending_ids
        .iter()
        .rev()
        .nth(k)
        .cloned()
        .unwrap_or_else(|| "missing".to_owned())
}

fn commands(len_max: usize) -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec((step(), -1_000_000i64..3_000_000), 1..len_max).prop_map(build)
}

fn run_all(commands: &[Command]) -> (LedgerState, Vec<Applied>) {
    let mut state = LedgerState::new();
    let applied = (1u64..)
        .zip(commands)
        .map(|(index, cmd)| state.execute(index, cmd))
        .collect();
    (state, applied)
}

fn parts(state: &LedgerState) -> RestoreParts {
    RestoreParts {
        accounts: state.accounts().cloned().collect(),
        transfers: state.transfers().map(|t| t.into_owned()).collect(),
        idempotency: state
            .idempotency_entries()
            .map(|(k, e)| (k.into_owned(), e.into_owned()))
            .collect(),
        last_event_seq: state.last_event_seq(),
        last_timestamp_us: state.last_timestamp_us(),
        applied_hash: state.applied_hash(),
    }
}

/// Records the first stored result of every id seen in `result` (and its batch inner results).
fn record_first(result: &CommandResult, first: &mut BTreeMap<String, CommandResult>) {
    let unrecorded = matches!(
        result.outcome,
        Outcome::Rejected(Rejection::IdempotencyKeyReused | Rejection::InvalidCommand { .. })
    );
    if !result.replayed && !unrecorded {
        first
            .entry(result.command_id.to_string())
            .or_insert_with(|| result.clone());
    }
    if let Outcome::Accepted { inner, .. } = &result.outcome {
        for inner in inner {
            record_first(inner, first);
        }
    }
}

fn is_expiry(kind: &EventKind) -> bool {
    matches!(kind, EventKind::TransferExpired { .. })
}

type Snapshot = (Vec<Account>, Vec<Transfer>, RestoreParts, u64);

fn snapshot(state: &LedgerState) -> Snapshot {
    let mut p = parts(state);
    p.last_timestamp_us = 0;
    p.applied_hash = [0; 32];
    (
        state.accounts().cloned().collect(),
        state.transfers().map(|t| t.into_owned()).collect(),
        p,
        state.last_event_seq(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// L1, L2 and consistency after every command; dense seqs; outcome event ranges.
    #[test]
    fn invariants_hold_and_seqs_are_dense(commands in commands(80)) {
        let mut state = LedgerState::new();
        let mut next_seq = 1;
        for (index, cmd) in (1u64..).zip(&commands) {
            let applied = state.execute(index, cmd);
            if let Err(violation) = state.check_invariants() {
                return Err(TestCaseError::fail(format!("{violation} after {cmd:?}")));
            }
            for event in &applied.events {
                prop_assert_eq!(event.seq, next_seq);
                prop_assert_eq!(event.index, index);
                prop_assert_eq!(event.timestamp_us, state.last_timestamp_us());
                next_seq += 1;
            }
            prop_assert_eq!(state.last_event_seq(), next_seq - 1);
            prop_assert!(state.last_timestamp_us() >= cmd.timestamp_us);
            let expiries = applied.events.iter().take_while(|e| is_expiry(&e.kind)).count();
            let own = &applied.events[expiries..];
            let fresh = !applied.result.replayed;
            match &applied.result.outcome {
                Outcome::Accepted { first_event_seq, last_event_seq, .. } if fresh => {
                    let is_tick = matches!(cmd.body, CommandBody::Tick);
                    let counted = if is_tick { &applied.events[..] } else { own };
                    match (counted.first(), counted.last()) {
                        (Some(first), Some(last)) => {
                            prop_assert_eq!((*first_event_seq, *last_event_seq), (first.seq, last.seq));
                        }
                        _ => {
                            let batch = matches!(cmd.body, CommandBody::Batch { .. });
                            prop_assert!(batch || is_tick, "accepted command without events: {:?}", cmd);
                            prop_assert_eq!((*first_event_seq, *last_event_seq), (next_seq - 1, next_seq - 1));
                        }
                    }
                }
                // Replays and rejections emit nothing beyond the expiries their time triggered.
                _ => prop_assert!(own.is_empty(), "events from a replay or rejection: {:?}", own),
            }
        }
    }

    /// Retrying any earlier command (top-level or batch inner) returns its first stored result,
    /// marked replayed, with no events and no change.
    #[test]
    fn retries_return_the_stored_result(commands in commands(60)) {
        let (mut state, applied) = run_all(&commands);
        let mut first = BTreeMap::new();
        for (cmd, a) in commands.iter().zip(&applied) {
            if !matches!(cmd.body, CommandBody::Tick) {
                record_first(&a.result, &mut first);
            }
        }
        // Expire every reservation first, so the retries' own time cannot trigger expiries.
        let tick = Command { id: "tick".to_owned(), timestamp_us: u64::MAX / 2, body: CommandBody::Tick };
        state.execute(commands.len() as u64 + 1, &tick);
        let before = snapshot(&state);
        let mut retried = Vec::new();
        for cmd in &commands {
            match &cmd.body {
                CommandBody::Tick => {}
                CommandBody::Batch { commands: inner, .. } => {
                    retried.push(cmd.clone());
                    retried.extend(inner.iter().cloned());
                }
                _ => retried.push(cmd.clone()),
            }
        }
        for (index, cmd) in (commands.len() as u64 + 2..).zip(&retried) {
            // Inner commands of an aborted batch were never recorded: not a retry, skip them.
            let Some(entry) = state.idempotency(&cmd.id).map(|e| e.into_owned()) else { continue };
            let again = state.execute(index, cmd);
            prop_assert!(again.events.is_empty(), "retry emitted {:?}", again.events);
            if entry.fingerprint == fingerprint(&cmd.body) {
                prop_assert_eq!(Some(&entry.result), first.get(&cmd.id));
                let expected = CommandResult { replayed: true, ..entry.result.clone() };
                prop_assert_eq!(again.result, expected);
            } else {
                prop_assert_eq!(again.result.outcome, Outcome::Rejected(Rejection::IdempotencyKeyReused));
            }
            prop_assert!(snapshot(&state) == before, "a retry changed the state");
        }
    }

    /// The same command list into a fresh state yields identical outputs and hashes.
    #[test]
    fn replay_is_deterministic(commands in commands(80)) {
        let (a, applied_a) = run_all(&commands);
        let (b, applied_b) = run_all(&commands);
        prop_assert_eq!(applied_a, applied_b);
        prop_assert_eq!(a.state_hash(), b.state_hash());
        prop_assert_eq!(a.applied_hash(), b.applied_hash());
    }

    /// Restoring from persisted parts and continuing matches never having stopped.
    #[test]
    fn restore_then_continue_matches(commands in commands(80), split in any::<prop::sample::Index>()) {
        let k = split.index(commands.len() + 1);
        let (mut original, _) = run_all(&commands[..k]);
        let mut restored = LedgerState::restore(parts(&original));
        prop_assert_eq!(restored.state_hash(), original.state_hash());
        prop_assert!(restored.check_invariants().is_ok());
        for (index, cmd) in (k as u64 + 1..).zip(&commands[k..]) {
            prop_assert_eq!(original.execute(index, cmd), restored.execute(index, cmd));
        }
        prop_assert_eq!(original.state_hash(), restored.state_hash());
        prop_assert_eq!(original.applied_hash(), restored.applied_hash());
    }
}

/// A cold history in memory, standing in for the node's sled table.
#[derive(Default)]
struct MemCold {
    transfers: std::sync::Mutex<BTreeMap<String, Transfer>>,
    idempotency: std::sync::Mutex<BTreeMap<String, IdempotencyEntry>>,
}

impl ColdHistory for MemCold {
    fn transfer(&self, id: &str) -> Option<Transfer> {
        self.transfers.lock().expect("lock").get(id).cloned()
    }
    fn idempotency(&self, command_id: &str) -> Option<IdempotencyEntry> {
        self.idempotency
            .lock()
            .expect("lock")
            .get(command_id)
            .cloned()
    }
    fn transfers(&self) -> Box<dyn Iterator<Item = Transfer> + '_> {
        let all: Vec<Transfer> = self
            .transfers
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        Box::new(all.into_iter())
    }
    fn idempotency_entries(&self) -> Box<dyn Iterator<Item = (String, IdempotencyEntry)> + '_> {
        let all: Vec<_> = self
            .idempotency
            .lock()
            .expect("lock")
            .clone()
            .into_iter()
            .collect();
        Box::new(all.into_iter())
    }
}

/// What the node does after a snapshot build: copy every sealed generation (oldest first, so
/// later records replace earlier ones) into the cold history, then forget them.
fn migrate(state: &mut LedgerState, cold: &MemCold) {
    let Some(last) = state.sealed_history().last().map(|s| s.number()) else {
        return;
    };
    for sealed in state.sealed_history() {
        let mut transfers = cold.transfers.lock().expect("lock");
        transfers.extend(sealed.transfers().map(|t| (t.id.to_string(), t.clone())));
        let mut idempotency = cold.idempotency.lock().expect("lock");
        idempotency.extend(
            sealed
                .idempotency()
                .map(|(k, e)| (k.to_string(), e.clone())),
        );
    }
    state.forget_sealed_through(last);
}

/// A restart of a node from `state` as its snapshot (at index `horizon - 1`): only the
/// working set comes back in memory; the cold history is whatever was migrated since.
fn restart(state: &LedgerState, cold: &std::sync::Arc<MemCold>, horizon: u64) -> LedgerState {
    let mut restored = LedgerState::restore(RestoreParts {
        accounts: state.accounts().cloned().collect(),
        transfers: state.pending_transfers().cloned().collect(),
        idempotency: Vec::new(),
        last_event_seq: state.last_event_seq(),
        last_timestamp_us: state.last_timestamp_us(),
        applied_hash: state.applied_hash(),
    });
    restored.attach_cold_history(cold.clone());
    restored.set_history_horizon(horizon);
    restored
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Where history lives (young, sealed, cold, or cold only after a restart) never changes
    /// what the ledger does: the tiered ledger answers, hashes and iterates exactly like one
    /// that keeps everything in memory, whenever seals, migrations and restarts happen.
    #[test]
    fn tiered_history_matches_all_in_memory(
        commands in commands(80),
        ops in prop::collection::vec(0u8..6, 100),
    ) {
        let cold = std::sync::Arc::new(MemCold::default());
        let mut model = LedgerState::new();
        let mut tiered = LedgerState::new();
        tiered.attach_cold_history(cold.clone());
        // A snapshot taken with everything before it migrated: (its index, the state).
        let mut restart_point: Option<(u64, LedgerState)> = None;
        for ((index, cmd), op) in (1u64..).zip(&commands).zip(ops.iter().cycle()) {
            prop_assert_eq!(tiered.execute(index, cmd), model.execute(index, cmd));
            match op {
                1 | 2 => tiered.seal_history(),
                3 => migrate(&mut tiered, &cold),
                4 => {
                    tiered.seal_history();
                    migrate(&mut tiered, &cold);
                    tiered = restart(&tiered, &cold, index + 1);
                }
                5 => {
                    tiered.seal_history();
                    migrate(&mut tiered, &cold);
                    restart_point = Some((index, tiered.clone()));
                }
                _ => {}
            }
            prop_assert!(tiered.check_invariants().is_ok());
        }
        if let Some((at, point)) = restart_point {
            // A crash after the cold history moved ahead of the last snapshot: restart from
            // the snapshot and replay the log after it over the ahead cold history.
            tiered.seal_history();
            migrate(&mut tiered, &cold);
            tiered = restart(&point, &cold, at + 1);
            let mut replay = LedgerState::new();
            for (index, cmd) in (1u64..).zip(&commands) {
                let applied = replay.execute(index, cmd);
                if index > at {
                    prop_assert_eq!(tiered.execute(index, cmd), applied);
                }
            }
        }
        prop_assert_eq!(tiered.state_hash(), model.state_hash());
        let transfers = |s: &LedgerState| {
            let mut all: Vec<Transfer> = s.transfers().map(|t| t.into_owned()).collect();
            all.sort_by(|a, b| a.id.cmp(&b.id));
            all
        };
        let entries = |s: &LedgerState| {
            let all = s.idempotency_entries().map(|(k, e)| (k.into_owned(), e.into_owned()));
            all.collect::<BTreeMap<String, IdempotencyEntry>>()
        };
        prop_assert_eq!(transfers(&tiered), transfers(&model));
        prop_assert_eq!(entries(&tiered).len(), model.idempotency_entries().count());
        prop_assert_eq!(tiered.idempotency_entries().count(), model.idempotency_entries().count());
        let entries = { let e = entries(&model); prop_assert_eq!(&entries(&tiered), &e); e };
        for (id, entry) in &entries {
            prop_assert_eq!(tiered.idempotency(id).map(|e| e.into_owned()), Some(entry.clone()));
        }
        for t in model.transfers() {
            prop_assert_eq!(tiered.transfer(&t.id).map(|x| x.into_owned()), Some(t.into_owned()));
        }
    }
}
