//! Negative controls: the node built with feature `sabotage` and one defect switched on must be
//! judged `invalid`, with the invariant the defect breaks named. Proves the checkers can fail.

mod common;

use common::{drill, sabotage_bin};

fn sabotaged(name: &str, which: &str, nemesis: &str, broken: &str) {
    let bin = sabotage_bin();
    let bin_s = bin.to_string_lossy().into_owned();
    let env = format!("RAFTLEDGER_SABOTAGE={which}");
    let mut d = drill(
        name,
        &[
            "--nodes",
            "3",
            "--duration",
            "12s",
            "--nemesis",
            nemesis,
            "--seed",
            "3",
            "--node-bin",
            &bin_s,
            "--node-env",
            &env,
            "--clients",
            "6",
        ],
    );
    let ok = d.code == 1 && d.verdict() == "invalid" && d.verdict_of(broken) == "invalid";
    if !ok {
        let why = d.keep();
        panic!(
            "sabotage {which}: expected exit 1 and {broken} invalid, got exit {} verdict {} {broken} {}\n{why}",
            d.code,
            d.verdict(),
            d.verdict_of(broken)
        );
    }
}

#[test]
fn double_apply_breaks_l3() {
    sabotaged("double-apply", "double-apply", "none", "L3");
}

#[test]
fn ack_before_commit_breaks_l4() {
    sabotaged(
        "ack-before-commit",
        "ack-before-commit",
        "isolate-leader",
        "L4",
    );
}

#[test]
fn stale_linearizable_reads_break_l5() {
    sabotaged(
        "stale-linearizable",
        "stale-linearizable",
        "isolate-leader",
        "L5",
    );
}
