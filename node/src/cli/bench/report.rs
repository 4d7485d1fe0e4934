//! Collects each phase's results: markdown table rows (metric | result | must | aim | verdict,
//! bars of BENCHMARKS.md), per-phase JSON, notes, and the machine the numbers came from.

use serde_json::{json, Map, Value};

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub metric: String,
    /// The measured value, formatted.
    pub result: String,
    /// The floor (the bar we must not fall below).
    pub must: String,
    /// The aim (the bar we want to reach).
    pub aim: String,
    /// `meets aim`, `meets must`, `BELOW MUST`, `reported`, `error`, ...
    pub verdict: String,
}

/// Everything the run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Table rows in phase order.
    pub rows: Vec<Row>,
    /// Per-phase raw results.
    pub phases: Map<String, Value>,
    /// Skipped phases, caveats, errors.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a table row.
    pub fn row(&mut self, metric: &str, result: String, must: &str, aim: &str, verdict: String) {
        self.rows.push(Row {
            metric: metric.into(),
            result,
            must: must.into(),
            aim: aim.into(),
            verdict,
        });
    }

    /// Stores a phase's raw results.
    pub fn phase(&mut self, name: &str, v: Value) {
        self.phases.insert(name.into(), v);
    }

    /// Adds a note (also printed right away).
    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        println!("  note: {s}");
        self.notes.push(s);
    }

    /// The markdown table.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| metric | result | must | aim | verdict |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.metric, r.result, r.must, r.aim, r.verdict
            ));
        }
        out
    }

    /// The whole report as JSON.
    pub fn to_json(&self, command: &str, machine: &Machine) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| json!({"metric": r.metric, "result": r.result, "must": r.must, "aim": r.aim, "verdict": r.verdict}))
            .collect();
        json!({
            "command": command,
            "machine": machine.to_json(),
            "rows": rows,
            "phases": self.phases,
            "notes": self.notes,
        })
    }
}

/// Verdict when higher is better.
pub fn verdict_higher(value: f64, must: f64, aim: Option<f64>) -> String {
    match aim {
        Some(a) if value >= a => "meets aim".into(),
        _ if value >= must => "meets must".into(),
        _ => "BELOW MUST".into(),
    }
}

/// Verdict when lower is better.
pub fn verdict_lower(value: f64, must: f64, aim: f64) -> String {
    if value <= aim {
        "meets aim".into()
    } else if value <= must {
        "meets must".into()
    } else {
        "ABOVE MUST".into()
    }
}

/// Appends a caveat when the run was smaller than the scale the bar is defined at.
pub fn at_scale(verdict: String, postings: u64, bar_postings: u64) -> String {
    if postings >= bar_postings {
        verdict
    } else {
        let (have, bar) = (
            super::stats::thousands(postings),
            super::stats::thousands(bar_postings),
        );
        format!("{verdict} (indicative: {have} postings, bar is at {bar})")
    }
}

/// The host the numbers came from.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs available to this process (`nproc`).
    pub nproc: usize,
    /// `MemTotal` from /proc/meminfo, in kB.
    pub mem_total_kb: Option<u64>,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// Reads the current host.
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let mem_total_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| proc_kb(&s, "MemTotal:"));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            nproc,
            mem_total_kb,
            kernel,
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let mem = self
            .mem_total_kb
            .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        format!("nproc {}, memory {mem}, kernel {}", self.nproc, self.kernel)
    }

    fn to_json(&self) -> Value {
        json!({"nproc": self.nproc, "mem_total_kb": self.mem_total_kb, "kernel": self.kernel})
    }
}

/// Value in kB of a `/proc` status line such as `VmRSS:   1234 kB`.
pub fn proc_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_proc_lines() {
        assert_eq!(
            verdict_higher(25_000.0, 20_000.0, Some(100_000.0)),
            "meets must"
        );
        assert_eq!(verdict_higher(1.0, 2.0, None), "BELOW MUST");
        assert_eq!(verdict_lower(4.0, 20.0, 5.0), "meets aim");
        assert_eq!(verdict_lower(21.0, 20.0, 5.0), "ABOVE MUST");
        assert_eq!(
            proc_kb("Name: x\nVmRSS:\t  1234 kB\n", "VmRSS:"),
            Some(1234)
        );
        assert!(at_scale("meets aim".into(), 10, 100).contains("indicative"));
    }
}
