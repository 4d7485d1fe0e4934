//! The report's read-model section (`--readmodel`): the catch-up after healing against the lag
//! bound, projection lag over the run (events behind the stream head and behind the nodes'
//! log, age of the oldest unprojected event, with fault bands; grey ticks where
//! `/admin/projections` did not answer),
//! and the read-your-writes reads as a strip (green 200, orange 503 behind, grey unavailable).

use super::html::{bands, esc, Axis, W};
use super::Bundle;
use crate::readside::api::LagSample;
use crate::readside::probe::RywSample;
use crate::readside::Outcome;
use std::fmt::Write;

/// Height of the lag chart, px.
const LAG_HEIGHT: f64 = 140.0;
/// Height of the read-your-writes strip, px.
const RYW_HEIGHT: f64 = 30.0;

/// Appends the section.
pub(super) fn section(h: &mut String, b: &Bundle<'_>, rm: &Outcome, ax: &Axis) {
    let s = &rm.settle;
    let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let _ = write!(
        h,
        "<h2>Read model</h2><p>The read model reached the log's last event seq {} with zero lag \
<b>{}</b> after the heal phase began (bound {} ms); final checkpoint {}, parked events {}; processor crashes: {}.</p>",
        show(s.target_seq),
        s.caught_up_ms
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_else(|| "never".into()),
        s.bound_ms,
        show(s.obs.projections.checkpoint),
        show(s.obs.projections.parked),
        if rm.crashes.is_empty() {
            "none".to_owned()
        } else {
            esc(&rm.crashes.join(", "))
        }
    );
    lag_chart(h, b, rm, ax);
    ryw_strip(h, b, rm, ax);
}

fn lag_chart(h: &mut String, b: &Bundle<'_>, rm: &Outcome, ax: &Axis) {
    let lag = &rm.samples.lag;
    let behind_log = |s: &LagSample| Some(s.log_seq?.saturating_sub(s.checkpoint?));
    let ev_max = lag
        .iter()
        .flat_map(|s| [s.events, behind_log(s)])
        .flatten()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let ms_max = lag.iter().filter_map(|s| s.ms).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        h,
        "<p>Projection lag while the workload ran (events scale max {ev_max}): blue = events behind the stream head, \
green = events behind the nodes' log (grows while NATS is down), red = age of the oldest unprojected event \
(own scale, max {ms_max} ms); grey ticks: <code>/admin/projections</code> did not answer.</p>\
<svg width='{W}' height='{LAG_HEIGHT}'>"
    );
    bands(h, b, ax, LAG_HEIGHT);
    let y = |v: u64, max: f64| LAG_HEIGHT - 5.0 - v as f64 / max * (LAG_HEIGHT - 20.0);
    let (mut events, mut log, mut ms) = (String::new(), String::new(), String::new());
    for s in lag {
        let x = ax.x(s.t_us);
        if !s.up {
            let _ = write!(
                h,
                "<rect x='{x:.1}' y='{:.1}' width='2' height='6' fill='#999'><title>no answer</title></rect>",
                LAG_HEIGHT - 6.0
            );
            continue;
        }
        if let Some(e) = s.events {
            let _ = write!(events, "{x:.1},{:.1} ", y(e, ev_max));
        }
        if let Some(e) = behind_log(s) {
            let _ = write!(log, "{x:.1},{:.1} ", y(e, ev_max));
        }
        if let Some(m) = s.ms {
            let _ = write!(ms, "{x:.1},{:.1} ", y(m, ms_max));
        }
    }
    let _ = write!(
        h,
        "<polyline points='{events}' fill='none' stroke='#1f77b4'/><polyline points='{log}' fill='none' stroke='#2ca02c'/>\
<polyline points='{ms}' fill='none' stroke='#d62728'/><text x='2' y='14' font-size='10'>lag</text></svg>"
    );
}

fn ryw_strip(h: &mut String, b: &Bundle<'_>, rm: &Outcome, ax: &Axis) {
    let ryw = &rm.samples.ryw;
    let ok = ryw.iter().filter(|s| s.status == 200).count();
    let is_behind =
        |s: &&RywSample| s.status == 503 && s.error.as_deref() == Some("read_model_behind");
    let behind = ryw.iter().filter(is_behind).count();
    let _ = write!(
        h,
        "<p>Read-your-writes reads (<code>min_seq</code> = an acknowledged transfer's <code>last_event_seq</code>): \
{} in all, {ok} answered, {behind} behind (503), {} unavailable (no answer or another error).</p><svg width='{W}' height='{RYW_HEIGHT}'>",
        ryw.len(),
        ryw.len() - ok - behind
    );
    bands(h, b, ax, RYW_HEIGHT);
    for s in ryw {
        let c = match s.status {
            200 => "#2e9d4f",
            _ if is_behind(&s) => "#f39c12",
            _ => "#999",
        };
        let _ = write!(
            h,
            "<rect x='{:.1}' y='10' width='2' height='14' fill='{c}'><title>{} min_seq {} -> {} seq {:?} balance {:?}</title></rect>",
            ax.x(s.t_us),
            esc(&s.account),
            s.min_seq,
            s.status,
            s.rm_seq,
            s.balance
        );
    }
    let _ = write!(h, "<text x='2' y='22' font-size='10'>ryw</text></svg>");
}
