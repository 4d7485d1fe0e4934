//! Smoke drills on the normal node binary: short seeded schedules covering every nemesis kind
//! must come out `valid` (exit 0), with every requested fault having taken effect. Seeds that
//! once exposed core bugs are kept here as regression cases.

mod common;

use common::{drill, node_bin};

fn must_be_valid(name: &str, nemesis: &str, seed: &str, duration: &str) {
    let bin = node_bin();
    let bin_s = bin.to_string_lossy().into_owned();
    let mut d = drill(
        name,
        &[
            "--nodes",
            "3",
            "--duration",
            duration,
            "--nemesis",
            nemesis,
            "--seed",
            seed,
            "--node-bin",
            &bin_s,
        ],
    );
    let ok = d.code == 0 && d.verdict() == "valid" && d.verdict_of("coverage") == "valid";
    if !ok {
        let why = d.keep();
        panic!(
            "{name}: expected valid, got exit {} verdict {}\n{why}",
            d.code,
            d.verdict()
        );
    }
    for f in [
        "run.json",
        "history.jsonl",
        "nemesis.jsonl",
        "results.json",
        "report.html",
        "node-1.log",
    ] {
        assert!(d.dir.join(f).exists(), "{f} missing from the run dir");
    }
    let html = std::fs::read_to_string(d.dir.join("report.html")).expect("report");
    assert!(
        html.contains("reproduce with: <code"),
        "report lacks the reproduce command"
    );
    assert!(
        d.output.contains(&format!("--seed {seed}")),
        "no reproduce line printed"
    );
}

#[test]
fn processes_and_partitions() {
    must_be_valid("smoke-procs-partitions", "kill,pause,partition", "1", "60s");
}

#[test]
fn membership_wipe_storm_and_slow_links() {
    must_be_valid(
        "smoke-membership",
        "membership,wipe,transfer-storm,delay,drop",
        "2",
        "60s",
    );
}
