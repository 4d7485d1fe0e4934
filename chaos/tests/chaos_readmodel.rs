//! The CQRS read side under chaos: a ~45 s drill with `--readmodel` in which nats-server is
//! SIGKILLed, PostgreSQL stopped immediately, the read-model processor SIGKILLed and nodes
//! SIGKILLed (each restarted) must come out `valid` — L7, RYW and RM-lag included — with every
//! fault having taken effect. Needs nats-server and PostgreSQL from scripts/install-deps.sh:
//! fails, never skips, when they are missing.

mod common;

use common::{drill, node_bin, readmodel_bin};

/// Read-side nemeses and a node kill, as the drill requests them.
const NEMESES: [&str; 4] = ["kill", "nats-kill", "postgres-kill", "readmodel-kill"];

#[test]
fn read_side_survives_nats_postgres_processor_and_node_kills() {
    readmodel::local::nats::binary()
        .expect("nats-server >= 2.10 is required (scripts/install-deps.sh)");
    readmodel::local::postgres::bindir().expect("PostgreSQL is required (scripts/install-deps.sh)");
    let (bin, rm) = (node_bin(), readmodel_bin());
    let (bin_s, rm_s) = (bin.to_string_lossy(), rm.to_string_lossy());
    let nemesis = NEMESES.join(",");
    let mut d = drill(
        "readmodel",
        &[
            "--nodes",
            "3",
            "--duration",
            "45s",
            "--nemesis",
            &nemesis,
            "--readmodel",
            "--seed",
            "4",
            "--node-bin",
            &bin_s,
            "--readmodel-bin",
            &rm_s,
        ],
    );
    let checks = ["L7", "RYW", "RM-lag", "coverage", "liveness"];
    let ok =
        d.code == 0 && d.verdict() == "valid" && checks.iter().all(|c| d.verdict_of(c) == "valid");
    if !ok {
        let verdicts: Vec<String> = checks
            .iter()
            .map(|c| format!("{c}={}", d.verdict_of(c)))
            .collect();
        let why = d.keep();
        panic!(
            "expected valid, got exit {} verdict {} ({})\n{why}",
            d.code,
            d.verdict(),
            verdicts.join(" ")
        );
    }
    let nem = std::fs::read_to_string(d.dir.join("nemesis.jsonl")).expect("nemesis.jsonl");
    for k in NEMESES {
        assert!(
            nem.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|r| r["kind"] == k && r["took_effect"] == true),
            "no {k} took effect:\n{nem}"
        );
    }
    let rm_facts = &d.results["readmodel"];
    assert!(
        rm_facts["caught_up_ms"].as_u64().is_some(),
        "results.json records the catch-up: {rm_facts}"
    );
    assert!(
        rm_facts["ryw_reads"]["ok"].as_u64().unwrap_or(0) > 0,
        "read-your-writes reads were answered: {rm_facts}"
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("run.json")).expect("run.json"))
            .expect("run.json is json");
    assert!(
        run["readmodel"]["nats_url"].is_string() && run["readmodel"]["outcome"].is_object(),
        "run.json records the read side: {}",
        run["readmodel"]
    );
    let html = std::fs::read_to_string(d.dir.join("report.html")).expect("report");
    assert!(
        html.contains("<h2>Read model</h2>"),
        "report lacks the read-model section"
    );
}
