//! The postings index against a model: an all-in-memory list per account (what the index was
//! before it paged to disk), through pages, window paging, crashes that lose an uncommitted
//! chunk, reopens and caps.

use super::*;
use ledger::{Command, CommandBody, Currency, LedgerState};

fn id(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

/// A fresh `postings` table in a temporary sled database.
fn table() -> Ns {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Ns::new(db.open_tree("t").unwrap(), 5)
}

fn write_rows(table: &Ns, rows: Vec<Row>) -> io::Result<()> {
    for (k, v) in rows {
        table.insert(k, v).map_err(crate::sm::codec::sled_err)?;
    }
    Ok(())
}

/// A tiny deterministic generator (the tests need no crate for it).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `n` commands over five accounts: opens, deposits, transfers (some refused), freezes.
fn commands(seed: u64, n: usize) -> Vec<Command> {
    let usd = Currency::parse("USD").unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let name = |i: u64| id(&format!("acct-{i}"));
    let mut bodies: Vec<CommandBody> = (0..5)
        .map(|i| CommandBody::OpenAccount {
            account: name(i),
            currency: usd,
            overdraft_limit: 0,
            metadata: "{}".to_owned(),
        })
        .collect();
    while bodies.len() < n {
        let (a, b) = (rng.below(5), rng.below(5));
        bodies.push(match rng.below(10) {
            0 => CommandBody::Deposit {
                account: name(a),
                amount: 1 + rng.below(1000) as i64,
            },
            1 => CommandBody::Freeze { account: name(a) },
            2 => CommandBody::Unfreeze { account: name(a) },
            _ if a != b => CommandBody::Transfer {
                from: name(a),
                to: name(b),
                amount: 1 + rng.below(300) as i64,
                pending: false,
                timeout_s: None,
                memo: None,
            },
            _ => CommandBody::Deposit {
                account: name(b),
                amount: 5,
            },
        });
    }
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Command {
            id: format!("c{i}"),
            timestamp_us: (i as u64 + 1) * 10,
            body,
        })
        .collect()
}

/// Events of `cmds`, one command per log index from 1.
fn events_of(cmds: &[Command]) -> Vec<Event> {
    let mut ledger = LedgerState::new();
    let mut events = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        events.extend(ledger.execute(i as u64 + 1, cmd).events);
    }
    events
}

/// The model: every posting of every account in memory.
fn model(events: &[Event]) -> HashMap<AccountId, Vec<Posting>> {
    let mut all: HashMap<AccountId, Vec<Posting>> = HashMap::new();
    for e in events {
        let changes = e.kind.balance_changes();
        for a in e.kind.accounts() {
            let list = all.entry(a.clone()).or_default();
            let before = list.last().map_or(0, |p| p.balance_after);
            let set = changes.iter().find(|(x, _)| *x == a).map(|c| c.1);
            list.push(Posting {
                ts_us: e.timestamp_us,
                seq: e.seq,
                index: e.index,
                balance_after: set.unwrap_or(before),
            });
        }
    }
    all
}

/// Every lookup of `index` (capped at `cap_seq`) equals the model of the events up to it.
fn check(index: &PostingsIndex, events: &[Event], cap_seq: u64) {
    let visible: Vec<Event> = events
        .iter()
        .filter(|e| e.seq <= cap_seq)
        .cloned()
        .collect();
    let model = model(&visible);
    let last_at = |list: &[Posting], f: &dyn Fn(&Posting) -> bool| {
        let n = list.partition_point(f);
        n.checked_sub(1).map(|i| list[i].balance_at())
    };
    for (account, list) in &model {
        for probe in list
            .iter()
            .flat_map(|p| [p.ts_us - 1, p.ts_us, p.ts_us + 5])
        {
            let got = index.balance_at_time(account, probe, cap_seq).unwrap();
            assert_eq!(
                got,
                last_at(list, &|p| p.ts_us <= probe),
                "{account} at {probe}"
            );
        }
        for probe in list.iter().flat_map(|p| [p.index - 1, p.index]) {
            let got = index.balance_at_index(account, probe, cap_seq).unwrap();
            assert_eq!(
                got,
                last_at(list, &|p| p.index <= probe),
                "{account} @{probe}"
            );
        }
        for after in [0, list[list.len() / 2].seq, list.last().unwrap().seq] {
            for limit in [1, 3, usize::MAX] {
                let got = index.seqs_after(account, after, cap_seq, limit).unwrap();
                let want = list.iter().map(|p| p.seq).filter(|s| *s > after);
                let want: Vec<u64> = want.take(limit).collect();
                assert_eq!(got, want, "{account} after {after} limit {limit}");
            }
        }
    }
    assert_eq!(
        index
            .balance_at_time(&id("nobody"), u64::MAX, cap_seq)
            .unwrap(),
        None
    );
}

#[test]
fn paged_index_matches_the_in_memory_model_through_crashes_and_reopens() {
    for seed in 1..=12u64 {
        let events = events_of(&commands(seed, 300));
        let mut rng = Rng(seed | 1);
        let table = table();
        let small = |t: &Ns| PostingsIndex::empty(t.clone()).with_limits(3, 7);
        let mut index = small(&table);
        // What a commit made durable: events, and where the unpaged postings begin.
        let (mut stored_seq, mut unpaged_from) = (0u64, 1u64);
        let mut next = 0usize;
        while next < events.len() {
            let chunk = (1 + rng.below(9) as usize).min(events.len() - next);
            for e in &events[next..next + chunk] {
                index.record(e).unwrap();
                // Recording an event again (a replay below the history mark) changes nothing.
                index.record(e).unwrap();
            }
            if rng.below(6) == 0 {
                // Crash before the commit: the chunk's rows and events are lost; reopen, then
                // the log replays the chunk.
                let stored: Vec<Event> = events[..stored_seq as usize].to_vec();
                let from = stored.iter().filter(|e| e.seq >= unpaged_from).cloned();
                index = small(&table)
                    .reopened(unpaged_from, from.map(Ok), stored_seq)
                    .unwrap();
                check(&index, &events, stored_seq);
                continue;
            }
            next += chunk;
            write_rows(&table, index.take_rows()).unwrap();
            (stored_seq, unpaged_from) = (index.last_seq(), index.unpaged_from_seq());
            assert!(index.unpaged_len() <= 7 * 2, "the window bounds the tails");
            if rng.below(4) == 0 {
                let from = events.iter().filter(|e| e.seq >= unpaged_from).cloned();
                index = small(&table)
                    .reopened(unpaged_from, from.map(Ok), stored_seq)
                    .unwrap();
            }
            check(&index, &events, stored_seq);
            // A ledger behind the index (replaying after a restart) sees only its own prefix.
            check(&index, &events, stored_seq / 2);
        }
        // An install rebuilds the same index into an empty table.
        let fresh = table_with_rebuild(&events);
        check(&fresh, &events, events.len() as u64);
    }
}

fn table_with_rebuild(events: &[Event]) -> PostingsIndex {
    let table = table();
    let n = events.len() as u64;
    let index = PostingsIndex::empty(table.clone()).with_limits(4, 9);
    let write = |rows| write_rows(&table, rows);
    index
        .rebuilt(events.iter().cloned().map(Ok), n, write)
        .unwrap()
}

#[test]
fn time_travel_follows_the_ledger_balances() {
    let cmds = commands(99, 200);
    let events = events_of(&cmds);
    let index = table_with_rebuild(&events);
    let n = events.len() as u64;
    let mut ledger = LedgerState::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let at = i as u64 + 1;
        ledger.execute(at, cmd);
        for account in ledger.accounts() {
            let got = index.balance_at_index(&account.id, at, n).unwrap().unwrap();
            assert_eq!(got.balance, account.balance, "{} at {at}", account.id);
            // Command i is stamped (i + 1) * 10 and no later command is stamped before.
            let by_time = index.balance_at_time(&account.id, at * 10 + 5, n).unwrap();
            assert_eq!(by_time, Some(got));
        }
    }
}

#[test]
fn open_and_rebuild_refuse_gaps_and_short_histories() {
    let events = events_of(&commands(7, 40));
    let n = events.len() as u64;
    let gap = events.iter().filter(|e| e.seq != 2).cloned().map(Ok);
    assert!(PostingsIndex::rebuild(table(), gap, n, |_| Ok(())).is_err());
    let all = events.iter().cloned().map(Ok);
    assert!(PostingsIndex::rebuild(table(), all, n + 1, |_| Ok(())).is_err());
    let late = events.iter().skip(3).cloned().map(Ok);
    assert!(PostingsIndex::open(table(), 2, late, n).is_err());
    let all = events.iter().cloned().map(Ok);
    let short = PostingsIndex::rebuild(table(), all, 1, |_| Ok(())).unwrap();
    assert_eq!(short.last_seq(), 1);
}
