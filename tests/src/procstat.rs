//! Resource sampling of running processes from `/proc`: resident memory and CPU time, for
//! the load tests' memory-growth and CPU figures.

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// `VmRSS` from `/proc/PID/status`, KiB.
    pub rss_kib: u64,
    /// `RssAnon` from `/proc/PID/status`, KiB: the private heap and stacks, without the
    /// shared ring mapping and file pages that make up the rest of `VmRSS`, so growth here
    /// is the process's own.
    pub anon_kib: u64,
    /// utime + stime from `/proc/PID/stat`, clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`; `None` when the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rss_kib = field("VmRSS:")?;
    let anon_kib = field("RssAnon:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis
    // start at field 3 (state). utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(ProcSample {
        rss_kib,
        anon_kib,
        cpu_ticks: utime + stime,
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// CPU use between two samples taken `dt` apart, in percent of one core.
pub fn cpu_percent(before: ProcSample, after: ProcSample, dt: Duration) -> f64 {
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64;
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    100.0 * ticks / ticks_per_second() as f64 / secs
}

/// The median of a slice (0 when empty).
pub fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The least-squares slope of `points` (x, y), in y units per x unit (0 with fewer than two
/// distinct x). A steady state shows as a slope near zero, whatever the noise around it.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// The `p`-th percentile (0..=100, nearest rank) of a slice (0 when empty).
pub fn percentile(values: &[u64], p: f64) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Context switches of every thread of a process so far (voluntary plus involuntary, from
/// `/proc/PID/task/*/status`): each one a time the process was woken or preempted. `None`
/// when the process is gone.
pub fn context_switches(pid: u32) -> Option<u64> {
    Some(
        thread_context_switches(pid)?
            .iter()
            .map(|t| t.switches)
            .sum(),
    )
}

/// One thread's share of [`context_switches`].
#[derive(Clone, Debug)]
pub struct ThreadSwitches {
    pub tid: u32,
    /// The thread's name (`comm`), which says whose it is: the process's own threads or a
    /// library's pool.
    pub name: String,
    pub switches: u64,
}

/// [`context_switches`] per thread.
pub fn thread_context_switches(pid: u32) -> Option<Vec<ThreadSwitches>> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let mut name = String::new();
        let mut total = 0u64;
        for line in status.lines() {
            if let Some(n) = line.strip_prefix("Name:") {
                name = n.trim().to_string();
            } else if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
        threads.push(ThreadSwitches {
            tid,
            name,
            switches: total,
        });
    }
    Some(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
        assert!(s.anon_kib > 0 && s.anon_kib <= s.rss_kib);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(median(&[3, 1, 2]), 2);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn slope_of_a_line_and_of_a_flat_noisy_series() {
        let line: Vec<(f64, f64)> = (0..60).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..60)
            .map(|x| (x as f64, if x % 2 == 0 { 100.0 } else { 104.0 }))
            .collect();
        assert!(slope(&flat).abs() < 0.01);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 9.0)]), 0.0);
    }
}
