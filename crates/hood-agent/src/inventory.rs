//! What this host offers, measured when the agent starts: CPU cores it may
//! use, memory, free disk under its data directory, and GPUs from NVML.
//!
//! NVML (`libnvidia-ml.so`) is loaded at run time by `nvml-wrapper`: a host
//! without the library has no GPUs, which is not an error.

use crate::host_metrics::disk_bytes;
use hood_agent_proto::v1::{Gpu, Inventory};
use hood_domain::host_metrics::parse_meminfo;
use std::path::Path;

const MIB: u64 = 1024 * 1024;
/// `NVML_DEVICE_MIG_ENABLE`.
const MIG_ENABLED: u32 = 1;

/// Measures the host. Each part that cannot be read is zero (and logged):
/// a capacity the control plane then refuses to place on, rather than a
/// guess.
pub fn measure(data_dir: &Path) -> Inventory {
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(0);
    let memory_mib = match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => parse_meminfo(&text).map_or(0, |(total, _)| total / MIB),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/meminfo");
            0
        }
    };
    Inventory {
        cores,
        memory_mib,
        disk_mib: disk_bytes(data_dir).map_or(0, |(_, available)| available / MIB),
        gpus: gpus(),
    }
}

fn gpus() -> Vec<Gpu> {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(nvml) => nvml,
        Err(e) => {
            tracing::debug!(error = %e, "no NVML: this host reports no GPUs");
            return vec![];
        }
    };
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "NVML cannot count GPUs");
            return vec![];
        }
    };
    let mut found = vec![];
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(index, error = %e, "NVML cannot open a GPU");
                continue;
            }
        };
        let model = device.name().unwrap_or_else(|_| "unknown GPU".into());
        let memory_mib = device.memory_info().map(|m| m.total / MIB).unwrap_or(0);
        // Not supported (pre-Ampere) means no MIG.
        let mig = device
            .mig_mode()
            .map(|m| m.current == MIG_ENABLED)
            .unwrap_or(false);
        found.push(Gpu {
            index,
            model,
            memory_mib,
            mig,
            uuid: device.uuid().unwrap_or_default(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn this_machine_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let inv = measure(&dir.path().join("not-yet"));
        assert!(inv.cores >= 1);
        assert!(inv.memory_mib > 0);
        assert!(inv.disk_mib > 0);
        // Without NVML (this machine has no GPU): none, and no error.
        if std::path::Path::new("/dev/nvidia0").exists() {
            assert!(!inv.gpus.is_empty(), "a GPU is present: NVML lists it");
        } else {
            assert!(inv.gpus.is_empty());
        }
    }
}
