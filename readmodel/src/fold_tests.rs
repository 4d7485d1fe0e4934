//! Unit tests of the projection fold: money checked against `balance_after`, poison parked
//! with its (non-system) accounts quarantined, pending reservations, daily totals.

use crate::fold::{BatchWrite, Fold, RawEvent};
use serde_json::json;
use std::collections::{HashMap, HashSet};

const T0: &str = "2026-11-23T10:00:00.000000Z";

fn raw(seq: u64, kind: &str, data: serde_json::Value) -> RawEvent {
    let v = json!({"seq": seq, "index": seq, "timestamp": T0, "type": kind, "schema_version": 1, "command_id": "c", "data": data});
    RawEvent {
        stream_seq: seq,
        subject: format!("ledger.events.{kind}"),
        payload: v.to_string().into(),
    }
}

fn open(seq: u64, a: &str) -> RawEvent {
    raw(
        seq,
        "account_opened",
        json!({"account": a, "currency": "USD", "overdraft_limit": 0, "metadata": "{}"}),
    )
}

fn post(seq: u64, d: &str, c: &str, amount: i64, da: i64, ca: i64, from_pending: bool) -> RawEvent {
    raw(
        seq,
        "transfer_posted",
        json!({"transfer_id": format!("t{seq}"), "debit": d, "credit": c, "amount": amount,
        "debit_balance_after": da, "credit_balance_after": ca, "from_pending": from_pending, "memo": null}),
    )
}

fn fold(events: &[RawEvent]) -> BatchWrite {
    let mut f = Fold::new(HashMap::new(), HashSet::new());
    for e in events {
        f.apply(e);
    }
    f.finish()
}

#[test]
fn postings_move_money_and_record_history() {
    let w = "@world:USD";
    let f = fold(&[
        open(1, w),
        open(2, "a"),
        open(3, "b"),
        post(4, w, "a", 10, -10, 10, false),
        post(5, "a", "b", 4, 6, 4, false),
    ]);
    let acc = &f.accounts;
    assert_eq!((acc["a"].balance, acc["a"].version), (6, 2));
    assert_eq!((acc["b"].balance, acc["b"].version), (4, 1));
    assert_eq!(acc[w].balance, -10);
    assert_eq!(f.history.len(), 4);
    assert!(f.parked.is_empty());
    let day = &f.daily[&("2026-11-23".to_string(), "USD".to_string())];
    assert_eq!(
        (day.transfer_count, day.volume_minor, day.deposits_minor),
        (2, 14, 10)
    );
    assert_eq!(f.last_seq, 5);
}

#[test]
fn wrong_balance_after_is_parked_and_quarantines_the_account() {
    let w = "@world:USD";
    let f = fold(&[
        open(1, w),
        open(2, "a"),
        open(3, "b"),
        open(4, "c"),
        post(5, w, "a", 10, -10, 999, false),
        post(6, w, "b", 1, -11, 1, false),
        post(7, "b", "a", 1, 0, 1, false),
        post(8, w, "c", 2, -13, 2, false),
    ]);
    let parked: Vec<i64> = f.parked.iter().map(|p| p.seq).collect();
    assert_eq!(
        parked,
        vec![5, 7],
        "the bad posting and the next one touching `a`"
    );
    let q: Vec<(&str, i64)> = f
        .quarantined
        .iter()
        .map(|(a, s, _)| (a.as_str(), *s))
        .collect();
    assert_eq!(
        q,
        vec![("a", 5), ("b", 7)],
        "system accounts are never quarantined"
    );
    assert_eq!(f.accounts["a"].balance, 0, "parked events change nothing");
    assert_eq!(f.accounts["b"].balance, 1);
    assert_eq!(f.accounts["c"].balance, 2, "other accounts keep flowing");
    assert_eq!(
        f.accounts[w].balance, -13,
        "system account resynced from the event"
    );
}

#[test]
fn pending_reserves_and_release_or_post_frees() {
    let w = "@world:USD";
    let mut events = vec![
        open(1, w),
        open(2, "a"),
        open(3, "b"),
        post(4, w, "a", 10, -10, 10, false),
    ];
    events.push(raw(5, "transfer_pending", json!({"transfer_id": "p", "debit": "a", "credit": "b", "amount": 3, "expires_at_us": null, "debit_balance_after": 10, "credit_balance_after": 0, "memo": null})));
    events.push(raw(6, "transfer_pending", json!({"transfer_id": "q", "debit": "a", "credit": "b", "amount": 2, "expires_at_us": null, "debit_balance_after": 10, "credit_balance_after": 0, "memo": null})));
    events.push(raw(
        7,
        "transfer_voided",
        json!({"transfer_id": "q", "debit": "a", "credit": "b", "amount": 2}),
    ));
    events.push(post(8, "a", "b", 3, 7, 3, true));
    events.push(raw(9, "account_frozen", json!({"account": "b"})));
    let f = fold(&events);
    assert!(f.parked.is_empty(), "{:?}", f.parked);
    assert_eq!(f.accounts["a"].pending_debits, 0);
    assert_eq!(f.accounts["a"].balance, 7);
    assert_eq!(f.accounts["b"].status, "frozen");
    let over = fold(&[
        open(1, "a"),
        open(2, "b"),
        raw(
            3,
            "transfer_voided",
            json!({"transfer_id": "z", "debit": "a", "credit": "b", "amount": 1}),
        ),
    ]);
    assert_eq!(
        over.parked.len(),
        1,
        "release beyond what is pending is poison"
    );
}

#[test]
fn undecodable_and_mismatched_seq_are_parked() {
    let mut bad = open(2, "a");
    bad.stream_seq = 3;
    let junk = RawEvent {
        stream_seq: 4,
        subject: "s".into(),
        payload: "{".into(),
    };
    let f = fold(&[open(1, "x"), bad, junk]);
    let reasons: Vec<&str> = f.parked.iter().map(|p| p.reason.as_str()).collect();
    assert!(reasons[0].contains("stream seq"), "{reasons:?}");
    assert!(reasons[1].contains("bad json"), "{reasons:?}");
    assert_eq!(f.last_seq, 4);
}
