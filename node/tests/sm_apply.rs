//! State machine apply and restart: applied state, responses through the reader, restart by
//! snapshot + log replay (same state hash, same last applied, no duplicated history), and the
//! openraft bookkeeping of blank and membership entries.

mod sm_support;

use ledger::{CommandBody, Currency, Outcome};
use node::sm::StateMachineStore;
use openraft::storage::RaftStateMachine;
use sm_support::{
    acct, apply, blank, build_snapshot, cmd, log_id, membership, normal, reopen_and_replay,
    Workload,
};

#[tokio::test]
async fn blank_and_membership_entries_advance_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(store.applied_state().await.unwrap().0, None);
    apply(
        &mut store,
        vec![blank(0), blank(1), membership(2, &[1, 2, 3]), blank(3)],
    )
    .await;
    let (applied, mem) = store.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(3)));
    assert_eq!(mem.log_id(), &Some(log_id(2)));
    assert_eq!(
        mem.membership().voter_ids().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(store.reader().applied_index(), 3);
    assert_eq!(*store.reader().watch_applied().borrow(), 3);
    drop(store);
    let log = vec![blank(0), blank(1), membership(2, &[1, 2, 3]), blank(3)];
    let mut store = reopen_and_replay(dir.path(), &log).await;
    let (applied2, mem2) = store.applied_state().await.unwrap();
    assert_eq!(
        (applied2, mem2),
        (applied, mem),
        "applied state survives reopen"
    );
}

#[tokio::test]
async fn commands_apply_and_results_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let usd = Currency::parse("USD").unwrap();
    let open = |id: &str, a: &str| {
        let body = CommandBody::OpenAccount {
            account: acct(a),
            currency: usd,
            overdraft_limit: 0,
            metadata: "{}".to_owned(),
        };
        cmd(id, 10, body)
    };
    let deposit = cmd(
        "d1",
        20,
        CommandBody::Deposit {
            account: acct("alice"),
            amount: 100,
        },
    );
    let transfer = |id: &str, amount| {
        let body = CommandBody::Transfer {
            from: acct("alice"),
            to: acct("bob"),
            amount,
            pending: false,
            timeout_s: None,
            memo: None,
        };
        cmd(id, 30, body)
    };
    apply(
        &mut store,
        vec![
            blank(0),
            normal(1, vec![open("o1", "alice"), open("o2", "bob")]),
            normal(2, vec![deposit, transfer("t1", 30)]),
            normal(3, vec![transfer("t2", 1_000)]),
        ],
    )
    .await;
    let reader = store.reader();
    assert_eq!(reader.applied_index(), 3);
    let (index, balances) = reader.balances(&[acct("alice"), acct("bob"), acct("nobody")]);
    assert_eq!(index, 3);
    assert_eq!(balances, vec![Some(70), Some(30), None]);
    let t1 = reader.command_result("t1").expect("t1 recorded");
    assert_eq!(t1.index, 2);
    assert!(t1.outcome.is_accepted());
    let t2 = reader.command_result("t2").expect("t2 recorded");
    assert!(
        matches!(t2.outcome, Outcome::Rejected(_)),
        "overdraft is a rejection, not an error"
    );
    assert_eq!(reader.transfer("t1").1.map(|t| t.amount), Some(30));
    assert!(reader.transfer("t2").1.is_none());
    // Events: 2 openings, system account opening, deposit, transfer.
    let events = sm_support::all_events(&reader);
    assert_eq!(events.len() as u64, reader.last_event_seq());
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(*reader.watch_event_seq().borrow(), reader.last_event_seq());
    let alice = reader.account_events(&acct("alice"), 0, 100).unwrap();
    assert_eq!(alice.len(), 3, "opened, deposit, transfer: {alice:?}");
    let after_first = reader
        .account_events(&acct("alice"), alice[0].seq, 100)
        .unwrap();
    assert_eq!(after_first, alice[1..].to_vec());
    assert_eq!(
        reader.account_events(&acct("alice"), 0, 1).unwrap(),
        alice[..1].to_vec()
    );
}

#[tokio::test]
async fn reopen_restores_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(7, 8, 1);
    let mut entries = vec![blank(0), w.opening_entry()];
    for i in 0..300 {
        entries.push(if i % 50 == 0 {
            w.blank_entry()
        } else {
            w.next_entry()
        });
    }
    // Several apply calls of different sizes, with a snapshot part-way: the restart loads it
    // and replays only the entries after it.
    for (i, chunk) in entries.chunks(37).enumerate() {
        apply(&mut store, chunk.to_vec()).await;
        if i == 3 {
            build_snapshot(&mut store).await;
        }
    }
    let reader = store.reader();
    let before = (
        sm_support::fingerprint(&reader),
        store.applied_state().await.unwrap(),
    );
    assert_eq!(reader.applied_index(), w.next_index - 1);
    drop(reader);
    drop(store);
    let reopened = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened.reader().applied_index(),
        4 * 37 - 1,
        "a reopened store starts at its snapshot (entries 0..4 * 37)"
    );
    drop(reopened);
    let mut store = reopen_and_replay(dir.path(), &entries).await;
    let reader = store.reader();
    let after = (
        sm_support::fingerprint(&reader),
        store.applied_state().await.unwrap(),
    );
    assert_eq!(
        before, after,
        "replay gives the same state, time travel, listings and no duplicated events"
    );
    // And it keeps applying where it left off.
    apply(&mut store, vec![w.next_entry()]).await;
    assert_eq!(store.reader().applied_index(), w.next_index - 1);
}

#[tokio::test]
async fn replaying_the_same_log_on_two_stores_gives_the_same_hash() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut s1 = StateMachineStore::open(d1.path()).unwrap();
    let mut s2 = StateMachineStore::open(d2.path()).unwrap();
    let mut w = Workload::new(11, 5, 1);
    let mut entries = vec![blank(0), w.opening_entry()];
    entries.extend((0..120).map(|_| w.next_entry()));
    apply(&mut s1, entries.clone()).await;
    for e in entries {
        apply(&mut s2, vec![e]).await;
    }
    assert_eq!(s1.reader().state_hash(), s2.reader().state_hash());
    assert_eq!(s1.reader().applied_hash(), s2.reader().applied_hash());
}

#[tokio::test]
async fn reapplying_an_applied_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(3, 2, 1);
    let e = w.opening_entry();
    apply(&mut store, vec![blank(0), e.clone()]).await;
    let items = vec![Ok((e, None))];
    let res = store.apply(futures::stream::iter(items)).await;
    assert!(
        res.is_err(),
        "a normal entry at or below last applied means log and state disagree"
    );
}
