//! Checker tests on hand-made histories and logs: each invariant's checker accepts a correct
//! history and names the violation in a broken one.

use super::*;
use crate::history::{Op, OpKind, Outcome, TransferReq};
use crate::log::{LogEvent, Replay};
use serde_json::json;

const TAG: &str = "t";

fn accounts() -> Vec<String> {
    vec!["t-a0".into(), "t-a1".into()]
}

/// Log: open a0 (1), open a1 (2), deposits 50 each (3, 4), transfer x 10 a0->a1 at index 5.
fn log() -> Vec<LogEvent> {
    let ev = |seq: u64, index: u64, kind: &str, data: serde_json::Value| LogEvent {
        seq,
        index,
        timestamp_us: 1_000 * seq,
        kind: kind.into(),
        command_id: String::new(),
        data,
    };
    let post = |seq, index, id: &str, from: &str, to: &str, amt, fa, ta| {
        ev(
            seq,
            index,
            "transfer_posted",
            json!({"transfer_id": id, "debit": from,
            "credit": to, "amount": amt, "debit_balance_after": fa, "credit_balance_after": ta}),
        )
    };
    vec![
        ev(1, 1, "account_opened", json!({"account": "@world:USD"})),
        ev(2, 1, "account_opened", json!({"account": "t-a0"})),
        ev(3, 2, "account_opened", json!({"account": "t-a1"})),
        post(4, 3, "t-a0-seed", "@world:USD", "t-a0", 50, -50, 50),
        post(5, 4, "t-a1-seed", "@world:USD", "t-a1", 50, -100, 50),
        post(6, 5, "t-x", "t-a0", "t-a1", 10, 40, 60),
    ]
}

fn transfer(id: u64, tid: &str, outcome: Outcome, index: Option<u64>, t: (u64, u64)) -> Op {
    let mut o = Op::new(id, id, OpKind::Transfer, 1, t.0);
    o.complete_us = t.1;
    o.outcome = outcome;
    o.index = index;
    o.transfer = Some(TransferReq {
        id: tid.into(),
        from: "t-a0".into(),
        to: "t-a1".into(),
        amount: 10,
    });
    o
}

fn read_all(id: u64, index: u64, a0: i64, a1: i64, t: (u64, u64)) -> Op {
    let mut o = Op::new(id, id, OpKind::ReadAll, 1, t.0);
    o.complete_us = t.1;
    o.outcome = Outcome::Ok;
    o.index = Some(index);
    o.balances = Some([("t-a0".to_owned(), a0), ("t-a1".to_owned(), a1)].into());
    o
}

fn run(ops: &[Op], log: &[LogEvent]) -> Vec<CheckResult> {
    let replay = Replay::build(log);
    let node_logs = [(1, log.to_vec()), (2, log.to_vec())].into();
    let accounts = accounts();
    check_history(&Inputs {
        ops,
        log,
        replay: &replay,
        node_logs: &node_logs,
        accounts: &accounts,
        total: 100,
        tag: TAG,
        wgl_time_limit_ms: 5_000,
    })
}

fn verdicts(rs: &[CheckResult]) -> Vec<(String, Verdict)> {
    rs.iter().map(|r| (r.id.clone(), r.verdict)).collect()
}

fn invalid(rs: &[CheckResult]) -> Vec<String> {
    rs.iter()
        .filter(|r| r.verdict == Verdict::Invalid)
        .map(|r| r.id.clone())
        .collect()
}

#[test]
fn correct_history_is_valid() {
    let ops = vec![
        read_all(0, 4, 50, 50, (0, 10)),
        transfer(1, "t-x", Outcome::Ok, Some(5), (20, 30)),
        read_all(2, 5, 40, 60, (40, 50)),
        transfer(3, "t-y", Outcome::Fail, None, (60, 70)),
    ];
    let rs = run(&ops, &log());
    assert!(invalid(&rs).is_empty(), "{:?}", verdicts(&rs));
    assert_eq!(overall(&rs), Verdict::Valid);
}

#[test]
fn each_broken_history_names_its_invariant() {
    // L1: a snapshot that lost money.
    assert!(invalid(&run(&[read_all(0, 5, 40, 50, (0, 1))], &log())).contains(&"L1".into()));
    // L2: a negative balance.
    assert!(invalid(&run(&[read_all(0, 5, -10, 110, (0, 1))], &log())).contains(&"L2".into()));
    // L4: acknowledged at a different index, or not in the log at all; failed but present.
    for op in [
        transfer(1, "t-x", Outcome::Ok, Some(9), (0, 1)),
        transfer(1, "t-z", Outcome::Ok, Some(6), (0, 1)),
        transfer(1, "t-x", Outcome::Fail, None, (0, 1)),
    ] {
        assert!(invalid(&run(&[op], &log())).contains(&"L4".into()));
    }
    // L5 + WGL: a read after the transfer completed that does not see it.
    let stale = vec![
        transfer(1, "t-x", Outcome::Ok, Some(5), (0, 10)),
        read_all(2, 4, 50, 50, (20, 30)),
    ];
    let bad = invalid(&run(&stale, &log()));
    assert!(
        bad.contains(&"L5".into()) && bad.contains(&"WGL".into()),
        "{bad:?}"
    );
    // L3: the same transfer posted twice.
    let mut twice = log();
    let mut dup = twice[5].clone();
    dup.seq = 7;
    dup.index = 6;
    twice.push(dup);
    assert!(invalid(&run(&[], &twice)).contains(&"L3".into()));
}

#[test]
fn l6_flags_diverging_hashes_and_logs() {
    let at = |i: u64, h: &str| l6::Applied {
        applied: i,
        hash_index: i,
        hash: h.into(),
    };
    let same = [(1, log()), (2, log())].into();
    let ok = l6::check(&[(1, at(5, "aa")), (2, at(5, "aa"))].into(), &same);
    assert_eq!(ok.verdict, Verdict::Valid);
    let bad = l6::check(&[(1, at(5, "aa")), (2, at(5, "bb"))].into(), &same);
    assert_eq!(bad.verdict, Verdict::Invalid);
    let mut other = log();
    other[5].data["amount"] = json!(11);
    let diverged = l6::check(
        &[(1, at(5, "aa")), (2, at(5, "aa"))].into(),
        &[(1, log()), (2, other)].into(),
    );
    assert_eq!(diverged.verdict, Verdict::Invalid);
    let behind = l6::check(&[(1, at(5, "aa")), (2, at(4, "cc"))].into(), &same);
    assert_eq!(behind.verdict, Verdict::Unknown);
}

#[test]
fn without_any_node_log_log_based_checks_are_withheld_not_invalid() {
    let ops = vec![
        transfer(1, "t-x", Outcome::Ok, Some(5), (0, 10)),
        read_all(2, 5, 40, 60, (20, 30)),
    ];
    let accounts = accounts();
    let replay = Replay::build(&[]);
    let no_logs = BTreeMap::new();
    let rs = check_history(&Inputs {
        ops: &ops,
        log: &[],
        replay: &replay,
        node_logs: &no_logs,
        accounts: &accounts,
        total: 100,
        tag: TAG,
        wgl_time_limit_ms: 5_000,
    });
    assert!(invalid(&rs).is_empty(), "{:?}", verdicts(&rs));
    for id in ["L1", "L3", "L4", "L5", "L8"] {
        let r = rs.iter().find(|r| r.id == id).expect("result");
        assert_eq!(r.verdict, Verdict::Unknown, "{id}");
        assert!(r.note.contains("no node's log"), "{id}: {}", r.note);
    }
    assert_eq!(overall(&rs), Verdict::Unknown);
    // A snapshot read that lost money is still a violation: it needs no log.
    let lost = [read_all(0, 5, 40, 50, (0, 1))];
    let rs = check_history(&Inputs {
        ops: &lost,
        log: &[],
        replay: &replay,
        node_logs: &no_logs,
        accounts: &accounts,
        total: 100,
        tag: TAG,
        wgl_time_limit_ms: 5_000,
    });
    assert!(invalid(&rs).contains(&"L1".into()), "{:?}", verdicts(&rs));
}
