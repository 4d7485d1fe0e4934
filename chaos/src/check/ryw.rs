//! RYW: read-your-writes on the read model. Each probe read asked `min_seq = N` after a
//! transfer was acknowledged with `last_event_seq = N`. A 200 must report
//! `X-Read-Model-Seq >= N` and a balance equal to the replay of events 1..that seq (so it
//! reflects the write and is not torn). A 503 `read_model_behind` is the documented answer when
//! the read model cannot reach N within 1 s (e.g. NATS is down) and is not a violation; no
//! answer or another error (the processor or PostgreSQL is down) is counted, not judged. No 200
//! at all → `unknown`.

use super::CheckResult;
use crate::log::Replay;
use crate::readside::probe::RywSample;

/// Runs RYW.
pub fn check(samples: &[RywSample], replay: &Replay) -> CheckResult {
    let mut r = CheckResult::new(
        "RYW",
        "read model min_seq reads reflect the acknowledged write (X-Read-Model-Seq)",
    );
    let (mut behind, mut unavailable) = (0u64, 0u64);
    for s in samples {
        match (s.status, s.error.as_deref()) {
            (200, _) => {}
            (503, Some("read_model_behind")) => {
                behind += 1;
                continue;
            }
            _ => {
                unavailable += 1;
                continue;
            }
        }
        r.checked += 1;
        let Some(seq) = s.rm_seq else {
            r.violation(
                format!(
                    "read of {} (min_seq {}): no X-Read-Model-Seq",
                    s.account, s.min_seq
                ),
                vec![],
                Some(s.t_us),
            );
            continue;
        };
        if seq < s.min_seq {
            r.violation(
                format!(
                    "read of {} with min_seq {} answered at seq {seq}: the acknowledged write is not visible",
                    s.account, s.min_seq
                ),
                vec![],
                Some(s.t_us),
            );
            continue;
        }
        let want = replay.balance_at_seq(&s.account, seq);
        if want != s.balance {
            r.violation(
                format!(
                    "read of {} at seq {seq} (min_seq {}): balance {:?}, replay of events 1..{seq} gives {want:?}",
                    s.account, s.min_seq, s.balance
                ),
                vec![],
                Some(s.t_us),
            );
        }
    }
    if r.checked == 0 {
        r.unknown("no read-your-writes read was answered 200");
    }
    let note = format!(
        "{} reads: {} answered, {behind} behind (503 read_model_behind), {unavailable} unavailable (no answer or another error)",
        samples.len(),
        r.checked
    );
    r.note = if r.note.is_empty() {
        note
    } else {
        format!("{}; {note}", r.note)
    };
    r
}
