//! L7: the read model at checkpoint s equals the replay of events 1..s — no gaps, no
//! duplicates — and, once caught up (s == the nodes' last event seq), the nodes' state.
//! Per account: the balance at the answer's `X-Read-Model-Seq` equals the replay there; the
//! posting history (seq, balance_after) equals the replay's postings up to s, one for one;
//! balance and version equal the node's. Also: the checkpoint never passes the log, nothing
//! is parked, and the bank's accounts sum to the bank total. Not caught up → `unknown` (the
//! comparison at the checkpoint still runs; RM-lag names the missed bound).

use super::CheckResult;
use crate::log::Replay;
use crate::readside::settle::{RmAccount, Settle};

/// Runs L7 on the post-heal observation; `bank` are the workload's accounts, `total` their sum.
pub fn check(settle: &Settle, replay: &Replay, bank: &[String], total: i64) -> CheckResult {
    let mut r = CheckResult::new(
        "L7",
        "read model at checkpoint s = replay of events 1..s = nodes' state when caught up",
    );
    let Some(target) = settle.target_seq else {
        r.unknown("the nodes reported no last event seq");
        return r;
    };
    let obs = &settle.obs;
    let Some(cp) = obs.projections.checkpoint else {
        r.unknown("the read model's /admin/projections did not answer");
        return r;
    };
    r.checked += 1;
    if cp > target {
        r.violation(
            format!("read model checkpoint {cp} is past the log's last event seq {target}"),
            vec![],
            None,
        );
    } else if cp < target {
        r.unknown(&format!(
            "read model stopped at checkpoint {cp} < the log's {target}: compared at its checkpoint"
        ));
    }
    if let Some(p) = obs.projections.parked.filter(|p| *p > 0) {
        r.violation(format!("{p} events parked as poison"), vec![], None);
    }
    for (a, acc) in &obs.accounts {
        account(&mut r, a, acc, replay, settle, target);
    }
    bank_total(&mut r, obs.accounts.iter(), bank, total);
    r.note = format!(
        "{}checkpoint {cp}, log {target}, {} accounts",
        if r.note.is_empty() {
            String::new()
        } else {
            format!("{}; ", r.note)
        },
        obs.accounts.len()
    );
    r
}

fn account(
    r: &mut CheckResult,
    a: &str,
    acc: &RmAccount,
    replay: &Replay,
    settle: &Settle,
    target: u64,
) {
    let at = acc.seq.or(settle.obs.projections.checkpoint).unwrap_or(0);
    match acc.status {
        200 => {}
        404 => {
            r.checked += 1;
            if let Some(opened) = replay.opened_seq.get(a).filter(|o| **o <= at) {
                r.violation(
                    format!("{a} missing from the read model at seq {at}; opened at seq {opened}"),
                    vec![],
                    None,
                );
            }
            return;
        }
        s => {
            r.unknown(&format!("read of {a} answered {s}"));
            return;
        }
    }
    let Some(s) = acc.seq else {
        r.violation(format!("read of {a}: no X-Read-Model-Seq"), vec![], None);
        return;
    };
    r.checked += 1;
    let want = replay.balance_at_seq(a, s);
    if want != acc.balance {
        r.violation(
            format!(
                "{a} at seq {s}: read model balance {:?}, replay of events 1..{s} gives {want:?}",
                acc.balance
            ),
            vec![],
            None,
        );
    }
    history(r, a, acc, replay, s);
    if s != target {
        return;
    }
    r.checked += 1;
    match settle.obs.node_accounts.get(a) {
        Some(Some(n)) => {
            if acc.balance != Some(n.balance) || acc.version != Some(n.version) {
                r.violation(
                    format!(
                        "{a} at seq {s}: read model balance {:?} version {:?}, nodes {} / {}",
                        acc.balance, acc.version, n.balance, n.version
                    ),
                    vec![],
                    None,
                );
            }
        }
        Some(None) => r.violation(
            format!("{a} is in the read model but the nodes say 404"),
            vec![],
            None,
        ),
        None => r.unknown(&format!("the nodes did not answer for {a}")),
    }
}

/// The history up to `s` must list exactly the replay's postings up to `s`, in order.
fn history(r: &mut CheckResult, a: &str, acc: &RmAccount, replay: &Replay, s: u64) {
    if !acc.history_complete {
        r.unknown(&format!("history of {a} not read to its end"));
        return;
    }
    r.checked += 1;
    let got: Vec<(u64, i64)> = acc.history.iter().copied().filter(|p| p.0 <= s).collect();
    let want: Vec<(u64, i64)> = replay
        .postings
        .get(a)
        .into_iter()
        .flatten()
        .filter(|p| p.seq <= s)
        .map(|p| (p.seq, p.balance))
        .collect();
    if got == want {
        return;
    }
    let k = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
    r.violation(
        format!(
            "history of {a} up to seq {s}: {} postings, replay {}; first difference at #{k}: read model {:?}, replay {:?}",
            got.len(),
            want.len(),
            got.get(k),
            want.get(k)
        ),
        vec![],
        None,
    );
}

/// When every bank account was read at one seq, they sum to the bank total.
fn bank_total<'a>(
    r: &mut CheckResult,
    accounts: impl Iterator<Item = (&'a String, &'a RmAccount)>,
    bank: &[String],
    total: i64,
) {
    let read: Vec<&RmAccount> = accounts
        .filter(|(a, _)| bank.contains(a))
        .map(|(_, acc)| acc)
        .collect();
    let one_seq = read.windows(2).all(|w| w[0].seq == w[1].seq);
    if read.len() != bank.len() || !one_seq || read.iter().any(|a| a.balance.is_none()) {
        return;
    }
    r.checked += 1;
    let sum: i64 = read.iter().filter_map(|a| a.balance).sum();
    if sum != total {
        r.violation(
            format!("bank accounts in the read model sum to {sum}, expected {total}"),
            vec![],
            None,
        );
    }
}
