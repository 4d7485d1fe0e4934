//! How much CPU the host's normal-priority work left over recently, read from the kernel's
//! counters in `/proc/stat`: time idle, waiting for I/O, or spent on niced threads (which
//! normal-priority work would take first). Background work asks it before it starts at the
//! lowest priority: on a saturated host such work would be starved and never finish.

use std::fs;

/// The host's CPU counters at one moment, in clock ticks summed over all CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    /// Every tick counted (user, nice, system, idle, iowait, irq, softirq, steal).
    total: u64,
    /// Ticks idle, waiting for I/O, or running niced threads.
    spare: u64,
    /// CPUs the kernel lists.
    cpus: u32,
}

/// Measures spare CPU between successive calls to [`SpareCpu::sample`].
#[derive(Debug, Default)]
pub struct SpareCpu {
    /// The counters at the last sample.
    last: Option<Counters>,
}

impl SpareCpu {
    /// CPUs' worth of spare time since the previous call (e.g. 0.5 on a host that left half a
    /// CPU unused), or `None` on the first call or when the counters cannot be read.
    pub fn sample(&mut self) -> Option<f64> {
        let now = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse(&text));
        let last = std::mem::replace(&mut self.last, now);
        spare_between(last?, now?)
    }
}

/// CPUs' worth of spare time between two readings (`None` when no time passed).
fn spare_between(before: Counters, after: Counters) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let spare = after.spare.checked_sub(before.spare)?;
    if total == 0 {
        return None;
    }
    Some(spare.min(total) as f64 / total as f64 * f64::from(after.cpus))
}

/// Reads the aggregate `cpu` line of `/proc/stat` and counts the `cpuN` lines.
fn parse(stat: &str) -> Option<Counters> {
    let mut lines = stat.lines();
    let mut fields = lines.next()?.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let ticks: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks.try_into().ok()?;
    let cpus = lines.take_while(|l| l.starts_with("cpu")).count() as u32;
    Some(Counters {
        total: user + nice + system + idle + iowait + irq + softirq + steal,
        spare: nice + idle + iowait,
        cpus: cpus.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "cpu  100 10 50 800 40 0 0 0 0 0\n\
                          cpu0 50 5 25 400 20 0 0 0 0 0\n\
                          cpu1 50 5 25 400 20 0 0 0 0 0\n\
                          intr 12345\n";

    #[test]
    fn parses_the_aggregate_line_and_counts_cpus() {
        let c = parse(BEFORE).unwrap();
        assert_eq!(
            c,
            Counters {
                total: 1000,
                spare: 850,
                cpus: 2
            }
        );
        assert_eq!(parse("intr 1\n"), None);
        assert_eq!(parse("cpu 1 2 x\n"), None);
    }

    #[test]
    fn spare_cpus_scale_the_share_of_spare_ticks_by_the_cpus() {
        let before = parse(BEFORE).unwrap();
        // 200 ticks pass: 150 busy at normal priority, 20 niced, 30 idle a quarter of 2 CPUs.
        let after = Counters {
            total: before.total + 200,
            spare: before.spare + 50,
            cpus: 2,
        };
        assert_eq!(spare_between(before, after), Some(0.5));
        assert_eq!(spare_between(before, before), None);
        // Counters that went backwards (a reset) give no answer rather than a wrong one.
        assert_eq!(spare_between(after, before), None);
    }

    #[test]
    fn reads_this_host_within_its_cpus() {
        let cpus = parse(&fs::read_to_string("/proc/stat").unwrap())
            .unwrap()
            .cpus;
        let mut meter = SpareCpu::default();
        assert_eq!(
            meter.sample(),
            None,
            "the first sample has nothing to compare"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        let spare = meter.sample().expect("a second sample compares");
        assert!(
            (0.0..=f64::from(cpus)).contains(&spare),
            "spare {spare} of {cpus}"
        );
    }
}
