//! `report.html`: one self-contained page (inline SVG and CSS, no scripts, no network): verdict
//! banner with the reproduce command, per-invariant table, a timeline (client lanes coloured by
//! ok/fail/info, fault bands, leader and term track), latency and throughput per second with
//! fault shading, total money over time, read-model lag (`readmodel`), and the first
//! counterexample as a window of ops.

use super::Bundle;
use crate::check::Verdict;
use crate::history::{Op, OpKind, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Plot width in px.
pub(super) const W: f64 = 1100.0;
/// Left margin for lane labels.
pub(super) const LEFT: f64 = 60.0;
/// Most client lanes drawn (later processes are folded into the last lane).
const LANES_MAX: usize = 48;
/// Ops shown around the first counterexample.
const WINDOW_OPS_MAX: usize = 30;
/// Half-width of the counterexample window, µs.
const WINDOW_US: u64 = 300_000;

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The time axis shared by every chart.
pub(super) struct Axis {
    end_us: f64,
}

impl Axis {
    /// x pixel of `t_us`.
    pub(super) fn x(&self, t_us: u64) -> f64 {
        LEFT + (t_us as f64 / self.end_us).min(1.0) * (W - LEFT)
    }
}

/// Renders the page.
pub fn render(b: &Bundle<'_>) -> String {
    let end_us = b
        .ops
        .iter()
        .map(|o| o.complete_us)
        .chain(b.records.iter().map(|r| r.end_us))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let ax = Axis { end_us };
    let verdict = crate::check::overall(b.results);
    let colour = match verdict {
        Verdict::Valid => "#1b7f3b",
        Verdict::Unknown => "#a86b00",
        Verdict::Invalid => "#b3261e",
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>raftledger chaos seed {}</title>\
<style>body{{font:13px system-ui,sans-serif;margin:20px;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}code{{background:#f3f3f3;padding:2px 4px}}\
.banner{{color:#fff;background:{colour};padding:12px 16px;border-radius:6px}}h2{{margin-top:28px}}</style></head><body>\
<div class=banner><b style='font-size:20px'>verdict: {}</b><br>reproduce with: <code style='color:#000'>{}</code></div>",
        b.run.seed,
        verdict.name(),
        esc(&b.run.reproduce)
    );
    invariants(&mut h, b);
    timeline(&mut h, b, &ax);
    rates(&mut h, b, &ax);
    money(&mut h, b, &ax);
    if let Some(rm) = b.readmodel {
        super::readmodel::section(&mut h, b, rm, &ax);
    }
    counterexample(&mut h, b);
    faults(&mut h, b);
    h.push_str("</body></html>\n");
    h
}

fn invariants(h: &mut String, b: &Bundle<'_>) {
    h.push_str("<h2>Invariants</h2><table><tr><th>id</th><th>verdict</th><th>checked</th><th>violations</th><th>first counterexample / note</th></tr>");
    for r in b.results {
        let first = r
            .first
            .as_ref()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            esc(&r.id),
            r.verdict.name(),
            r.checked,
            r.violations,
            esc(&first),
            esc(&r.note)
        );
    }
    h.push_str("</table>");
}

/// Fault bands over a chart of `height` px.
pub(super) fn bands(h: &mut String, b: &Bundle<'_>, ax: &Axis, height: f64) {
    for r in b.records {
        let (x0, x1) = (ax.x(r.start_us), ax.x(r.end_us));
        let _ = write!(
            h,
            "<rect x='{x0:.1}' y='0' width='{:.1}' height='{height}' fill='#f4b4b4' opacity='0.35'><title>{} {:?} {}</title></rect>\
<text x='{x0:.1}' y='10' font-size='9'>{}</text>",
            (x1 - x0).max(1.0),
            r.kind.name(),
            r.nodes,
            esc(&r.evidence),
            r.kind.name()
        );
    }
}

fn timeline(h: &mut String, b: &Bundle<'_>, ax: &Axis) {
    let mut procs: Vec<u64> = b.ops.iter().map(|o| o.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let lane: BTreeMap<u64, usize> = procs
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i.min(LANES_MAX - 1)))
        .collect();
    let lanes = procs.len().clamp(1, LANES_MAX);
    let top = 40.0;
    let height = top + lanes as f64 * 8.0 + 10.0;
    let _ = write!(
        h,
        "<h2>Timeline</h2><p>Top: leader track (colour = leader id, number = term). Below: one lane per logical client \
(green ok, red fail, orange info; a client retires after info). Shaded: faults.</p><svg width='{W}' height='{height}'>"
    );
    bands(h, b, ax, height);
    leader_track(h, b, ax, 16.0);
    for o in b.ops {
        let y = top + lane[&o.process] as f64 * 8.0;
        let c = match o.outcome {
            Outcome::Ok => "#2e9d4f",
            Outcome::Fail => "#d33",
            Outcome::Info => "#f39c12",
        };
        let (x0, x1) = (ax.x(o.invoke_us), ax.x(o.complete_us));
        let _ = write!(
            h,
            "<rect x='{x0:.1}' y='{y}' width='{:.1}' height='6' fill='{c}'><title>op {} p{} {:?} {:?} idx {:?}</title></rect>",
            (x1 - x0).max(1.0),
            o.op_id,
            o.process,
            o.f,
            o.outcome,
            o.index
        );
    }
    h.push_str("</svg>");
}

fn leader_track(h: &mut String, b: &Bundle<'_>, ax: &Axis, y: f64) {
    const PALETTE: [&str; 6] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2",
    ];
    let mut last_term = 0;
    for s in b.samples.iter().filter(|s| s.role == "leader") {
        let c = PALETTE[(s.node as usize) % PALETTE.len()];
        let _ = write!(
            h,
            "<rect x='{:.1}' y='{y}' width='3' height='10' fill='{c}'><title>leader {} term {}</title></rect>",
            ax.x(s.t_us),
            s.node,
            s.term
        );
        if s.term != last_term {
            last_term = s.term;
            let _ = write!(
                h,
                "<text x='{:.1}' y='{}' font-size='9'>t{}</text>",
                ax.x(s.t_us),
                y + 20.0,
                s.term
            );
        }
    }
    let _ = write!(
        h,
        "<text x='2' y='{}' font-size='10'>leader</text>",
        y + 9.0
    );
}

fn rates(h: &mut String, b: &Bundle<'_>, ax: &Axis) {
    let secs = (ax.end_us / 1e6).ceil().max(1.0) as usize;
    let mut ok = vec![0u64; secs + 1];
    let mut lat_max = vec![0u64; secs + 1];
    for o in b.ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let s = (o.complete_us / 1_000_000) as usize;
        if s <= secs {
            ok[s] += 1;
            lat_max[s] = lat_max[s].max(o.complete_us - o.invoke_us);
        }
    }
    let ok_max = ok.iter().copied().max().unwrap_or(1).max(1) as f64;
    let lat_top = lat_max.iter().copied().max().unwrap_or(1).max(1) as f64;
    let height = 160.0;
    let _ = write!(
        h,
        "<h2>Throughput and latency</h2><p>Bars: ok ops per second (max {ok_max}). Line: slowest ok op per second \
(max {:.0} ms).</p><svg width='{W}' height='{height}'>",
        lat_top / 1000.0
    );
    bands(h, b, ax, height);
    let bw = (W - LEFT) / secs as f64;
    let mut line = String::new();
    for s in 0..=secs {
        let x = ax.x(s as u64 * 1_000_000);
        let bh = ok[s] as f64 / ok_max * (height - 20.0);
        let _ = write!(
            h,
            "<rect x='{x:.1}' y='{:.1}' width='{:.1}' height='{bh:.1}' fill='#9ecae1'/>",
            height - bh,
            (bw - 1.0).max(1.0)
        );
        let ly = height - lat_max[s] as f64 / lat_top * (height - 20.0);
        let _ = write!(line, "{:.1},{ly:.1} ", x + bw / 2.0);
    }
    let _ = write!(
        h,
        "<polyline points='{line}' fill='none' stroke='#d62728'/></svg>"
    );
}

fn money(h: &mut String, b: &Bundle<'_>, ax: &Axis) {
    let pts: Vec<(u64, i64)> = b
        .ops
        .iter()
        .filter(|o| o.f == OpKind::ReadAll && o.outcome == Outcome::Ok)
        .filter_map(|o| o.balances.as_ref().map(|m| (o.invoke_us, m.values().sum())))
        .collect();
    let total = b.run.workload["total"].as_i64().unwrap_or(0);
    let (lo, hi) = pts
        .iter()
        .fold((total, total), |(l, u), (_, v)| (l.min(*v), u.max(*v)));
    let span = ((hi - lo) as f64).max(1.0);
    let height = 120.0;
    let y = |v: i64| 10.0 + (hi - v) as f64 / span * (height - 20.0);
    let _ = write!(
        h,
        "<h2>Total money over time</h2><p>Each dot is one snapshot read's sum; the line is the bank total ({total}). \
Range seen: {lo}..{hi}.</p><svg width='{W}' height='{height}'>"
    );
    bands(h, b, ax, height);
    let _ = write!(
        h,
        "<line x1='{LEFT}' x2='{W}' y1='{:.1}' y2='{:.1}' stroke='#888'/>",
        y(total),
        y(total)
    );
    for (t, v) in pts {
        let c = if v == total { "#2e9d4f" } else { "#d33" };
        let _ = write!(
            h,
            "<circle cx='{:.1}' cy='{:.1}' r='2' fill='{c}'/>",
            ax.x(t),
            y(v)
        );
    }
    h.push_str("</svg>");
}

fn counterexample(h: &mut String, b: &Bundle<'_>) {
    let Some((id, c)) = b
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Invalid)
        .find_map(|r| r.first.as_ref().map(|c| (&r.id, c)))
    else {
        h.push_str("<h2>First counterexample</h2><p>None found.</p>");
        return;
    };
    let _ = write!(
        h,
        "<h2>First counterexample ({})</h2><p>{}</p>",
        esc(id),
        esc(&c.message)
    );
    let involved: Vec<&Op> = b
        .ops
        .iter()
        .filter(|o| c.op_ids.contains(&o.op_id))
        .collect();
    let centre = c.t_us.or_else(|| involved.first().map(|o| o.invoke_us));
    let mut window: Vec<&Op> = involved.clone();
    if let Some(t) = centre {
        window.extend(b.ops.iter().filter(|o| {
            !c.op_ids.contains(&o.op_id)
                && o.complete_us + WINDOW_US >= t
                && o.invoke_us <= t + WINDOW_US
                && o.outcome == Outcome::Ok
        }));
    }
    window.sort_by_key(|o| o.invoke_us);
    window.truncate(WINDOW_OPS_MAX);
    h.push_str("<table><tr><th>op</th><th>process</th><th>f</th><th>node</th><th>invoke ms</th><th>complete ms</th><th>outcome</th><th>index</th><th>value</th></tr>");
    for o in window {
        let value = match (&o.transfer, &o.balances, o.balance) {
            (Some(t), _, _) => format!("{} {}→{} {}", t.id, t.from, t.to, t.amount),
            (_, Some(m), _) => format!("sum {}", m.values().sum::<i64>()),
            (_, _, Some(v)) => format!("{} = {v}", o.account.as_deref().unwrap_or("")),
            _ => o.error.clone().unwrap_or_default(),
        };
        let style = if c.op_ids.contains(&o.op_id) {
            " style='background:#fde2e1'"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{style}><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:?}</td><td>{:?}</td><td>{}</td></tr>",
            o.op_id,
            o.process,
            o.f,
            o.node,
            o.invoke_us as f64 / 1000.0,
            o.complete_us as f64 / 1000.0,
            o.outcome,
            o.index,
            esc(&value)
        );
    }
    h.push_str("</table>");
}

fn faults(h: &mut String, b: &Bundle<'_>) {
    h.push_str("<h2>Faults</h2><table><tr><th>#</th><th>kind</th><th>nodes</th><th>start s</th><th>end s</th><th>took effect</th><th>evidence</th></tr>");
    for r in b.records {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            r.seq,
            r.kind.name(),
            r.nodes,
            r.start_us as f64 / 1e6,
            r.end_us as f64 / 1e6,
            r.took_effect,
            esc(&r.evidence)
        );
    }
    let _ = write!(
        h,
        "</table><p>Heal: {}</p>",
        esc(&serde_json::to_string(b.heal).unwrap_or_default())
    );
}
