//! The host's counters for the cluster monitor, read from `/proc` and the
//! data directory's filesystem at every heartbeat (parsed by
//! `hood_domain::host_metrics`). Node observers read the same sample.

use hood_domain::host_metrics::{parse_cpu_ticks, parse_meminfo, parse_net_dev, HostCounters};
use std::path::Path;

/// Reads the counters now; `None` when `/proc` cannot be read (not
/// Linux, or a sandbox without it): the heartbeat then carries none.
pub fn sample(data_dir: &Path) -> Option<HostCounters> {
    let (cpu_busy_ticks, cpu_total_ticks) = parse_cpu_ticks(&read("/proc/stat")?)?;
    let (memory_total_bytes, memory_available_bytes) = parse_meminfo(&read("/proc/meminfo")?)?;
    // No network namespace view (or no /proc/net): zero traffic.
    let (net_rx_bytes, net_tx_bytes) = read("/proc/net/dev")
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    let (disk_total_bytes, disk_available_bytes) = disk_bytes(data_dir).unwrap_or_default();
    Some(HostCounters {
        cpu_busy_ticks,
        cpu_total_ticks,
        memory_total_bytes,
        memory_available_bytes,
        disk_total_bytes,
        disk_available_bytes,
        net_rx_bytes,
        net_tx_bytes,
    })
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .inspect_err(|e| tracing::debug!(path, error = %e, "cannot read host counters"))
        .ok()
}

/// `(total, available)` bytes of the filesystem holding `dir`, or of its
/// nearest existing ancestor (the data directory may not exist before
/// enrollment; the ancestor is the same filesystem in practice).
#[allow(clippy::useless_conversion)] // statvfs field types are u32 on some targets
pub fn disk_bytes(dir: &Path) -> Option<(u64, u64)> {
    let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    match nix::sys::statvfs::statvfs(existing) {
        Ok(fs) => {
            let fragment = u64::from(fs.fragment_size());
            Some((
                u64::from(fs.blocks()).saturating_mul(fragment),
                u64::from(fs.blocks_available()).saturating_mul(fragment),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %existing.display(), "cannot measure the disk");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn this_machine_has_cpu_time_memory_and_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        let a = sample(&dir.path().join("not-yet")).unwrap();
        assert!(a.cpu_total_ticks > 0 && a.cpu_busy_ticks <= a.cpu_total_ticks);
        assert!(a.memory_total_bytes > 0 && a.memory_available_bytes <= a.memory_total_bytes);
        assert!(a.disk_total_bytes > 0 && a.disk_available_bytes <= a.disk_total_bytes);
        // Counters only grow.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = sample(dir.path()).unwrap();
        assert!(b.cpu_total_ticks >= a.cpu_total_ticks);
        assert!(b.net_rx_bytes >= a.net_rx_bytes);
    }
}
