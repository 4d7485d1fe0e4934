//! Read-side checker tests on hand-made observations: L7 accepts a faithful read model and
//! flags each way one can be wrong; RM-lag flags a lag that never recovers; RYW flags a read
//! that does not show the acknowledged write.

use super::*;
use crate::log::{LogEvent, Replay};
use crate::readside::api::LagSample;
use crate::readside::probe::RywSample;
use crate::readside::settle::{NodeAccount, Observation, RmAccount, Settle};
use serde_json::json;

/// Log: world (1), a0 (2), a1 (3), seed deposits 50 each (4, 5), transfer 10 a0 -> a1 (6).
fn replay() -> Replay {
    let ev = |seq: u64, kind: &str, data: serde_json::Value| LogEvent {
        seq,
        index: seq,
        timestamp_us: seq,
        kind: kind.into(),
        command_id: String::new(),
        data,
    };
    let post = |seq, from: &str, to: &str, amount, fa, ta| {
        ev(
            seq,
            "transfer_posted",
            json!({"transfer_id": format!("x{seq}"), "debit": from, "credit": to,
                "amount": amount, "debit_balance_after": fa, "credit_balance_after": ta}),
        )
    };
    Replay::build(&[
        ev(1, "account_opened", json!({"account": "@world:USD"})),
        ev(2, "account_opened", json!({"account": "a0"})),
        ev(3, "account_opened", json!({"account": "a1"})),
        post(4, "@world:USD", "a0", 50, -50, 50),
        post(5, "@world:USD", "a1", 50, -100, 50),
        post(6, "a0", "a1", 10, 40, 60),
    ])
}

fn bank() -> Vec<String> {
    vec!["a0".into(), "a1".into()]
}

fn rm(seq: u64, balance: i64, history: &[(u64, i64)]) -> RmAccount {
    RmAccount {
        status: 200,
        seq: Some(seq),
        balance: Some(balance),
        version: Some(history.len() as i64),
        history: history.to_vec(),
        history_complete: true,
    }
}

fn projections(checkpoint: u64) -> LagSample {
    LagSample {
        up: true,
        checkpoint: Some(checkpoint),
        head: Some(checkpoint),
        events: Some(0),
        ms: Some(0),
        parked: Some(0),
        ..LagSample::default()
    }
}

/// A read model that caught up with the log (seq 6) and equals it.
fn faithful() -> Settle {
    let accounts = [
        ("a0".to_owned(), rm(6, 40, &[(4, 50), (6, 40)])),
        ("a1".to_owned(), rm(6, 60, &[(5, 50), (6, 60)])),
        ("@world:USD".to_owned(), rm(6, -100, &[(4, -50), (5, -100)])),
    ];
    let nodes = [("a0", 40, 2), ("a1", 60, 2), ("@world:USD", -100, 2)]
        .map(|(a, balance, version)| (a.to_owned(), Some(NodeAccount { balance, version })));
    Settle {
        target_seq: Some(6),
        caught_up_ms: Some(120),
        bound_ms: 20_000,
        samples: vec![projections(6)],
        obs: Observation {
            projections: projections(6),
            accounts: accounts.into(),
            node_accounts: nodes.into(),
        },
    }
}

fn l7(s: &Settle) -> Verdict {
    l7::check(s, &replay(), &bank(), 100).verdict
}

#[test]
fn l7_accepts_a_faithful_read_model() {
    let r = l7::check(&faithful(), &replay(), &bank(), 100);
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert!(r.checked >= 7, "{r:?}");
}

#[test]
fn l7_flags_a_mismatching_read_model() {
    let mut cases: Vec<(&str, Settle)> = Vec::new();
    let mut s = faithful();
    s.obs.accounts.get_mut("a0").unwrap().balance = Some(41);
    cases.push(("balance differs from the replay", s));
    let mut s = faithful();
    s.obs.accounts.get_mut("a1").unwrap().history = vec![(5, 50), (5, 50), (6, 60)];
    cases.push(("a duplicated posting", s));
    let mut s = faithful();
    s.obs.accounts.get_mut("a1").unwrap().history = vec![(6, 60)];
    cases.push(("a gap in the history", s));
    let mut s = faithful();
    s.obs.node_accounts.insert(
        "a0".into(),
        Some(NodeAccount {
            balance: 40,
            version: 3,
        }),
    );
    cases.push(("version differs from the nodes", s));
    let mut s = faithful();
    s.obs.projections.checkpoint = Some(7);
    cases.push(("checkpoint past the log", s));
    let mut s = faithful();
    s.obs.accounts.get_mut("a1").unwrap().status = 404;
    cases.push(("an opened account missing", s));
    let mut s = faithful();
    s.obs.projections.parked = Some(1);
    cases.push(("a parked event", s));
    let mut s = faithful();
    for a in ["a0", "a1"] {
        let acc = s.obs.accounts.get_mut(a).unwrap();
        acc.balance = acc.balance.map(|b| b + 5);
    }
    s.obs.node_accounts.clear();
    cases.push(("money created", s));
    for (what, s) in cases {
        assert_eq!(l7(&s), Verdict::Invalid, "{what} not flagged");
    }
}

#[test]
fn l7_behind_but_consistent_is_unknown() {
    let mut s = faithful();
    s.caught_up_ms = None;
    s.obs.projections.checkpoint = Some(5);
    s.obs.accounts = [
        ("a0".to_owned(), rm(5, 50, &[(4, 50)])),
        ("a1".to_owned(), rm(5, 50, &[(5, 50)])),
    ]
    .into();
    assert_eq!(l7(&s), Verdict::Unknown);
}

#[test]
fn rm_lag_flags_a_lag_that_never_recovers() {
    let mut stuck = faithful();
    stuck.caught_up_ms = None;
    stuck.samples = (0..50)
        .map(|i| LagSample {
            t_us: i * 100_000,
            up: true,
            checkpoint: Some(3),
            head: Some(6),
            events: Some(3),
            ms: Some(5_000 + i * 100),
            parked: Some(0),
            log_seq: Some(6),
        })
        .collect();
    let r = rm_lag::check(&stuck, &[], &stuck.samples);
    assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
    assert!(r.first.unwrap().message.contains("did not reach seq 6"));

    let mut slow = faithful();
    slow.caught_up_ms = Some(slow.bound_ms + 1);
    assert_eq!(rm_lag::check(&slow, &[], &[]).verdict, Verdict::Invalid);

    let ok = faithful();
    assert_eq!(rm_lag::check(&ok, &[], &[]).verdict, Verdict::Valid);
    let crashed = rm_lag::check(&ok, &["signal: 6 (SIGABRT)".into()], &[]);
    assert_eq!(crashed.verdict, Verdict::Invalid);
    let mut no_target = faithful();
    no_target.target_seq = None;
    assert_eq!(
        rm_lag::check(&no_target, &[], &[]).verdict,
        Verdict::Unknown
    );
}

fn ryw_read(min_seq: u64, status: u16, rm_seq: Option<u64>, balance: Option<i64>) -> RywSample {
    RywSample {
        t_us: 1,
        done_us: 2,
        account: "a1".into(),
        min_seq,
        status,
        rm_seq,
        balance,
        error: (status == 503).then(|| "read_model_behind".to_owned()),
    }
}

#[test]
fn ryw_flags_reads_that_miss_the_write() {
    let r = replay();
    let good = [
        ryw_read(6, 200, Some(6), Some(60)),
        ryw_read(5, 200, Some(5), Some(50)),
        ryw_read(6, 503, Some(5), None),
        ryw_read(6, 0, None, None),
    ];
    assert_eq!(ryw::check(&good, &r).verdict, Verdict::Valid);
    let older = [ryw_read(6, 200, Some(5), Some(50))];
    assert_eq!(ryw::check(&older, &r).verdict, Verdict::Invalid);
    let wrong = [ryw_read(6, 200, Some(6), Some(50))];
    assert_eq!(ryw::check(&wrong, &r).verdict, Verdict::Invalid);
    let unlabelled = [ryw_read(6, 200, None, Some(60))];
    assert_eq!(ryw::check(&unlabelled, &r).verdict, Verdict::Invalid);
    let never = [ryw_read(6, 503, Some(5), None)];
    assert_eq!(ryw::check(&never, &r).verdict, Verdict::Unknown);
}
