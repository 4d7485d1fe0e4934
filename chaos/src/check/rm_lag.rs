//! RM-lag: the lag bound. After healing, the read model must reach the nodes' last event seq
//! with zero lag behind the stream head within `--readmodel-lag-bound-ms`; a read model that
//! never recovers (stuck checkpoint, unreachable API, a crashed processor) is `invalid`.
//! Lag during the run is reported, not judged: faults legitimately hold it up.

use super::CheckResult;
use crate::readside::api::LagSample;
use crate::readside::settle::Settle;

/// Runs RM-lag; `crashes` are exits of the processor the harness did not cause, `run` the lag
/// samples taken while the workload ran.
pub fn check(settle: &Settle, crashes: &[String], run: &[LagSample]) -> CheckResult {
    let bound = settle.bound_ms;
    let mut r = CheckResult::new(
        "RM-lag",
        &format!("read model lag returns to 0 within {bound} ms of healing"),
    );
    r.checked = 1;
    match (settle.target_seq, settle.caught_up_ms) {
        (None, _) => r.unknown("the nodes reported no last event seq (did they converge?)"),
        (Some(_), Some(ms)) if ms <= bound => {}
        (Some(target), caught) => {
            let last = settle.samples.last().cloned().unwrap_or_default();
            let when = caught.map_or_else(
                || "not within the wait".to_owned(),
                |ms| format!("only after {ms} ms"),
            );
            r.violation(
                format!(
                    "read model did not reach seq {target} with zero lag within {bound} ms of healing (caught up {when}); last sample: up={} checkpoint {:?} head {:?} lag {:?} events / {:?} ms",
                    last.up, last.checkpoint, last.head, last.events, last.ms
                ),
                vec![],
                None,
            );
        }
    }
    for c in crashes {
        r.checked += 1;
        r.violation(
            format!("raftledger-readmodel exited on its own: {c}"),
            vec![],
            None,
        );
    }
    let answered: Vec<&LagSample> = run.iter().filter(|s| s.up).collect();
    let max_events = answered.iter().filter_map(|s| s.events).max();
    let max_ms = answered.iter().filter_map(|s| s.ms).max();
    let max_behind_log = answered
        .iter()
        .filter_map(|s| Some(s.log_seq?.saturating_sub(s.checkpoint?)))
        .max();
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let note = format!(
        "caught up {} ms after healing began; during the run: max lag {} events / {} ms behind the stream head, {} events behind the log, {} of {} samples unanswered",
        show(settle.caught_up_ms),
        show(max_events),
        show(max_ms),
        show(max_behind_log),
        run.len() - answered.len(),
        run.len()
    );
    r.note = if r.note.is_empty() {
        note
    } else {
        format!("{}; {note}", r.note)
    };
    r
}
