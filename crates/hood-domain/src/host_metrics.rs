//! The cluster monitor's numbers: what a host's agent counts (CPU time,
//! memory, disk of its data directory, network bytes), read from Linux's
//! `/proc` text by the pure parsers here, and the series derived from
//! consecutive samples (CPU use and network rates need two).
//!
//! Counters are cumulative since the host booted, so a sample is small and
//! a lost heartbeat loses no information: the next rate spans the gap. A
//! counter that goes backwards (a reboot) yields no rate for that step.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// One heartbeat's counters, as the agent read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    /// Clock ticks the CPUs spent on anything but idle and I/O wait.
    pub cpu_busy_ticks: u64,
    /// Clock ticks of all CPUs, busy or not.
    pub cpu_total_ticks: u64,
    pub memory_total_bytes: u64,
    /// What can be allocated without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
    /// The filesystem of the agent's data directory.
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    /// Bytes received and sent by every interface but loopback.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// Counters stamped with the control plane's clock when they arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSample {
    pub at: Timestamp,
    pub counters: HostCounters,
}

/// One point of a host's series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostMetricPoint {
    pub at: Timestamp,
    /// Share of CPU time busy since the previous sample, 0–100 with two
    /// decimals; `None` for the first sample or after a reboot.
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
    /// Bytes per second since the previous sample.
    pub net_rx_bytes_per_sec: Option<u64>,
    pub net_tx_bytes_per_sec: Option<u64>,
}

/// The series of `samples` (oldest first): every sample is a point, its
/// rates computed against the one before it.
pub fn series(samples: &[HostSample]) -> Vec<HostMetricPoint> {
    let mut out = Vec::with_capacity(samples.len());
    let mut previous: Option<&HostSample> = None;
    for s in samples {
        let c = &s.counters;
        let (cpu_percent, net_rx, net_tx) = match previous {
            Some(p) if s.at > p.at => {
                let millis = u64::try_from(s.at.0 - p.at.0).unwrap_or(1).max(1);
                let per_sec = |now: u64, before: u64| {
                    now.checked_sub(before).map(|d| {
                        u64::try_from(u128::from(d) * 1000 / u128::from(millis)).unwrap_or(u64::MAX)
                    })
                };
                (
                    cpu_share(&p.counters, c),
                    per_sec(c.net_rx_bytes, p.counters.net_rx_bytes),
                    per_sec(c.net_tx_bytes, p.counters.net_tx_bytes),
                )
            }
            _ => (None, None, None),
        };
        out.push(HostMetricPoint {
            at: s.at,
            cpu_percent,
            memory_used_bytes: c
                .memory_total_bytes
                .saturating_sub(c.memory_available_bytes),
            memory_total_bytes: c.memory_total_bytes,
            disk_used_bytes: c.disk_total_bytes.saturating_sub(c.disk_available_bytes),
            disk_total_bytes: c.disk_total_bytes,
            net_rx_bytes_per_sec: net_rx,
            net_tx_bytes_per_sec: net_tx,
        });
        previous = Some(s);
    }
    out
}

/// Busy share of the CPU time between two readings, in percent with two
/// decimals; `None` when no time passed or the counters went backwards.
pub fn cpu_share(before: &HostCounters, after: &HostCounters) -> Option<f64> {
    let total = after.cpu_total_ticks.checked_sub(before.cpu_total_ticks)?;
    let busy = after.cpu_busy_ticks.checked_sub(before.cpu_busy_ticks)?;
    if total == 0 {
        return None;
    }
    let hundredths = (u128::from(busy.min(total)) * 10_000 / u128::from(total)) as f64;
    Some(hundredths / 100.0)
}

/// CPU time of all CPUs from `/proc/stat`'s `cpu` line: `(busy, total)`
/// ticks. Idle and I/O wait are not busy; guest time is already counted
/// in user time, so only the first eight fields are summed.
pub fn parse_cpu_ticks(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    // user nice system idle iowait irq softirq steal
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `(MemTotal, MemAvailable)` of `/proc/meminfo`, in bytes. A kernel too
/// old for `MemAvailable` reports `MemFree` instead.
pub fn parse_meminfo(meminfo: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let n: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(n.saturating_mul(1024))
        })
    };
    let total = kib("MemTotal")?;
    let available = kib("MemAvailable").or_else(|| kib("MemFree"))?;
    Some((total, available))
}

/// Bytes received and sent by every interface of `/proc/net/dev` but
/// loopback: `(rx, tx)`.
pub fn parse_net_dev(net_dev: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in net_dev.lines() {
        let Some((name, numbers)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = numbers
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // receive: bytes packets errs drop fifo frame compressed multicast;
        // transmit: bytes …
        if let (Some(r), Some(t)) = (fields.first(), fields.get(8)) {
            rx = rx.saturating_add(*r);
            tx = tx.saturating_add(*t);
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 0 10 0\ncpu0 50 2 25 400 10 1 1 0 5 0\nintr 1 2\n";
    const MEMINFO: &str =
        "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 9999 10 0 0 0 0 0 0 9999 10 0 0 0 0 0 0\n  \
eth0: 1000 10 0 0 0 0 0 0 400 5 0 0 0 0 0 0\n  \
wlan0: 24 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";

    #[test]
    fn proc_text_is_read_into_counters() {
        // busy = user+nice+system+irq+softirq+steal; guest (10) not added.
        assert_eq!(parse_cpu_ticks(STAT), Some((160, 980)));
        assert_eq!(parse_cpu_ticks("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_cpu_ticks("cpu  1 x 3 4\n"), None);
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some((16_384_000 * 1024, 8_192_000 * 1024))
        );
        assert_eq!(
            parse_meminfo("MemTotal: 2048 kB\nMemFree: 1024 kB\n"),
            Some((2048 * 1024, 1024 * 1024))
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_net_dev(NET_DEV), (1024, 406));
        assert_eq!(parse_net_dev(""), (0, 0));
    }

    fn sample(at: i64, busy: u64, total: u64, rx: u64) -> HostSample {
        HostSample {
            at: Timestamp(at),
            counters: HostCounters {
                cpu_busy_ticks: busy,
                cpu_total_ticks: total,
                memory_total_bytes: 1000,
                memory_available_bytes: 250,
                disk_total_bytes: 500,
                disk_available_bytes: 100,
                net_rx_bytes: rx,
                net_tx_bytes: rx / 2,
            },
        }
    }

    #[test]
    fn rates_come_from_consecutive_samples_and_a_reboot_gives_none() {
        let points = series(&[
            sample(0, 100, 1000, 10_000),
            sample(2_000, 400, 2000, 14_000),
            // The host rebooted: every counter starts over.
            sample(4_000, 10, 100, 500),
            sample(4_500, 60, 200, 1_500),
        ]);
        assert_eq!(points.len(), 4);
        assert_eq!(points[0].cpu_percent, None);
        assert_eq!(points[0].net_rx_bytes_per_sec, None);
        assert_eq!(points[0].memory_used_bytes, 750);
        assert_eq!(points[0].disk_used_bytes, 400);
        assert_eq!(points[1].cpu_percent, Some(30.0));
        assert_eq!(points[1].net_rx_bytes_per_sec, Some(2_000));
        assert_eq!(points[1].net_tx_bytes_per_sec, Some(1_000));
        assert_eq!(points[2].cpu_percent, None);
        assert_eq!(points[2].net_rx_bytes_per_sec, None);
        assert_eq!(points[3].cpu_percent, Some(50.0));
        assert_eq!(points[3].net_rx_bytes_per_sec, Some(2_000));
    }

    #[test]
    fn cpu_share_keeps_two_decimals_and_never_exceeds_all_of_it() {
        let c = |busy, total| HostCounters {
            cpu_busy_ticks: busy,
            cpu_total_ticks: total,
            ..HostCounters::default()
        };
        assert_eq!(cpu_share(&c(0, 0), &c(1, 3)), Some(33.33));
        assert_eq!(cpu_share(&c(0, 0), &c(9, 3)), Some(100.0));
        assert_eq!(cpu_share(&c(5, 5), &c(5, 5)), None);
        // Two samples at the same instant: no rate.
        let same = series(&[sample(7, 1, 2, 3), sample(7, 2, 4, 6)]);
        assert_eq!(same[1].cpu_percent, None);
    }
}
