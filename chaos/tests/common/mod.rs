//! Shared helpers for the chaos tests: locate (or build) the node binaries, run the
//! `raftledger-chaos` binary on a short schedule into a private run dir, and read its verdict.
//! The run dir is kept (and its path printed) when a test fails.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The harness binary built for these tests.
pub fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raftledger-chaos"))
}

/// The cargo target dir the harness was built into (`<target>/<profile>/raftledger-chaos`).
fn target_dir() -> PathBuf {
    let h = harness();
    h.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("harness lives in <target>/<profile>/")
}

fn cargo_build(extra: &[&str]) {
    let st = Command::new(env!("CARGO"))
        .args(["build", "-p", "node", "--bin", "raftledger"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(st.success(), "cargo build {extra:?} failed");
}

/// The normal `raftledger` binary next to the harness (built if missing).
pub fn node_bin() -> PathBuf {
    let b = harness().with_file_name("raftledger");
    if !b.exists() {
        cargo_build(&[]);
    }
    assert!(b.exists(), "{} missing", b.display());
    b
}

/// The `raftledger-readmodel` binary next to the harness (built if missing; the harness itself
/// never builds it and fails when it is absent).
pub fn readmodel_bin() -> PathBuf {
    let b = harness().with_file_name("raftledger-readmodel");
    if !b.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "readmodel", "--bin", "raftledger-readmodel"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(st.success(), "cargo build -p readmodel failed");
    }
    assert!(b.exists(), "{} missing", b.display());
    b
}

/// The sabotage build of `raftledger`, kept at `<target>/sabotage/debug/raftledger` so it never
/// replaces the normal binary: built in the normal target dir (sharing every dependency), copied
/// aside, then the normal binary is rebuilt (both feature sets stay cached, so that is a relink).
/// The chaos tests run one at a time (nextest `cluster` group), so no other test sees the swap.
pub fn sabotage_bin() -> PathBuf {
    let normal = harness().with_file_name("raftledger");
    let dir = target_dir().join("sabotage").join("debug");
    std::fs::create_dir_all(&dir).expect("create sabotage dir");
    let b = dir.join("raftledger");
    cargo_build(&["--features", "sabotage"]);
    std::fs::copy(&normal, &b).expect("copy sabotage binary aside");
    cargo_build(&[]);
    assert!(b.exists(), "{} missing", b.display());
    b
}

/// A finished drill.
pub struct Drill {
    /// Exit code of the harness.
    pub code: i32,
    /// results.json.
    pub results: Value,
    /// Run dir (kept on failure).
    pub dir: PathBuf,
    /// Harness stdout + stderr.
    pub output: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Drill {
    /// Verdict of invariant `id` (`L3`, `coverage`, …).
    pub fn verdict_of(&self, id: &str) -> String {
        self.results["invariants"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == id)
            .and_then(|r| r["verdict"].as_str())
            .unwrap_or("missing")
            .to_owned()
    }

    /// Overall verdict.
    pub fn verdict(&self) -> String {
        self.results["verdict"]
            .as_str()
            .unwrap_or("missing")
            .to_owned()
    }

    /// Keeps the run dir and returns a description for an assertion message.
    pub fn keep(&mut self) -> String {
        if let Some(t) = self._tmp.take() {
            let _ = t.keep();
        }
        format!(
            "run dir kept at {}\n--- harness output ---\n{}",
            self.dir.display(),
            self.output
        )
    }
}

/// Runs the harness with `args` (plus a private run dir) and returns its verdict.
pub fn drill(name: &str, args: &[&str]) -> Drill {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("raftledger-chaos-{name}-"))
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path().join("run");
    eprintln!("[{name}] raftledger-chaos run {}", args.join(" "));
    let out = Command::new(harness())
        .arg("run")
        .args(args)
        .arg("--run-dir")
        .arg(&dir)
        .output()
        .expect("run harness");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results = std::fs::read(dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    eprintln!("{output}");
    Drill {
        code: out.status.code().unwrap_or(-1),
        results,
        dir,
        output,
        _tmp: Some(tmp),
    }
}
