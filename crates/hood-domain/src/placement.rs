//! Placement of allocations on a host: which cores, how much memory and
//! disk, and which GPUs or MIG slices an allocation gets. Pure: the caller
//! reads the host's capacity and its live reservations, asks [`place`],
//! and stores the answer in the same transaction that reads.
//!
//! Invariants ([`check`] states them, the property tests prove them):
//!
//! * no core, whole GPU or MIG placement slot is held by two reservations;
//! * memory and disk reserved never exceed the host's;
//! * a MIG slice starts only where NVIDIA's placement table allows its
//!   profile, on a GPU in MIG mode; a whole GPU is never also sliced.
//!
//! MIG geometry follows `nvidia-smi mig -lgipp` for the 7-compute-slice
//! GPUs (A100, H100, H200): placements are numbered over eight memory
//! slots, a profile occupies `size` of them from one of its legal starts
//! (`1g` anywhere in 0–6, `2g` at 0/2/4, `3g` at 0/4, `4g` and `7g` at 0).

use serde::{Deserialize, Serialize};

/// Placement slots of one MIG-capable GPU.
pub const MIG_SLOTS: u8 = 8;

/// One GPU instance profile of a MIG-capable GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigProfile {
    /// NVIDIA's name, e.g. `3g.71gb`.
    pub name: &'static str,
    /// Compute slices (of 7).
    pub compute: u8,
    /// Placement slots occupied.
    pub size: u8,
    /// Legal first slots.
    pub starts: &'static [u8],
}

impl MigProfile {
    /// The slots this profile occupies when it starts at `start`.
    pub fn mask_at(&self, start: u8) -> u8 {
        let run = if self.size >= 8 {
            u8::MAX
        } else {
            (1u8 << self.size) - 1
        };
        run << start
    }
}

/// The MIG profiles of the H200 (141 GB), as NVIDIA lists them.
pub const H200_PROFILES: &[MigProfile] = &[
    MigProfile {
        name: "1g.18gb",
        compute: 1,
        size: 1,
        starts: &[0, 1, 2, 3, 4, 5, 6],
    },
    MigProfile {
        name: "1g.35gb",
        compute: 1,
        size: 2,
        starts: &[0, 2, 4, 6],
    },
    MigProfile {
        name: "2g.35gb",
        compute: 2,
        size: 2,
        starts: &[0, 2, 4],
    },
    MigProfile {
        name: "3g.71gb",
        compute: 3,
        size: 4,
        starts: &[0, 4],
    },
    MigProfile {
        name: "4g.71gb",
        compute: 4,
        size: 4,
        starts: &[0],
    },
    MigProfile {
        name: "7g.141gb",
        compute: 7,
        size: 8,
        starts: &[0],
    },
];

/// The same geometry on the H100 (80 GB).
pub const H100_PROFILES: &[MigProfile] = &[
    MigProfile {
        name: "1g.10gb",
        compute: 1,
        size: 1,
        starts: &[0, 1, 2, 3, 4, 5, 6],
    },
    MigProfile {
        name: "1g.20gb",
        compute: 1,
        size: 2,
        starts: &[0, 2, 4, 6],
    },
    MigProfile {
        name: "2g.20gb",
        compute: 2,
        size: 2,
        starts: &[0, 2, 4],
    },
    MigProfile {
        name: "3g.40gb",
        compute: 3,
        size: 4,
        starts: &[0, 4],
    },
    MigProfile {
        name: "4g.40gb",
        compute: 4,
        size: 4,
        starts: &[0],
    },
    MigProfile {
        name: "7g.80gb",
        compute: 7,
        size: 8,
        starts: &[0],
    },
];

/// A MIG profile by name, across the GPUs Hood knows.
pub fn mig_profile(name: &str) -> Option<&'static MigProfile> {
    H200_PROFILES
        .iter()
        .chain(H100_PROFILES)
        .find(|p| p.name == name)
}

/// One GPU of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuCapacity {
    pub index: u32,
    pub model: String,
    pub memory_mib: u64,
    /// MIG mode is on: the GPU is handed out in slices only.
    pub mig: bool,
}

/// What a host offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCapacity {
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    #[serde(default)]
    pub gpus: Vec<GpuCapacity>,
}

/// What an allocation asks for (its SKU's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    #[serde(default)]
    pub gpu: GpuShape,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GpuShape {
    #[default]
    None,
    /// Whole GPUs (not in MIG mode).
    Whole { count: u32 },
    /// One MIG slice of the named profile.
    Mig { profile: String },
}

/// A GPU an allocation holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GpuClaim {
    Whole {
        gpu: u32,
    },
    Mig {
        gpu: u32,
        profile: String,
        start: u8,
    },
}

/// Where an allocation was placed: what it holds on its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Core numbers, ascending.
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    pub disk_mib: u64,
    #[serde(default)]
    pub gpus: Vec<GpuClaim>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("not enough free {resource} on the host: {wanted} wanted, {free} free")]
    Insufficient {
        resource: &'static str,
        wanted: u64,
        free: u64,
    },
    #[error("no GPU of the host has a free `{0}` slice at a legal position")]
    NoMigSlot(String),
    #[error("unknown MIG profile `{0}`")]
    UnknownProfile(String),
    #[error("a shape must ask for at least one core")]
    NoCores,
    #[error("the host's reservations do not fit it: {0}")]
    Inconsistent(Violation),
}

/// What [`check`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("core {0} is held twice or does not exist")]
    Core(u32),
    #[error("{resource}: {reserved} reserved of {capacity}")]
    Overcommitted {
        resource: &'static str,
        reserved: u64,
        capacity: u64,
    },
    #[error("GPU {0} is held twice, sliced and whole, or does not exist")]
    Gpu(u32),
    #[error("GPU {gpu}: `{profile}` at slot {start} is not a legal or free placement")]
    Mig {
        gpu: u32,
        profile: String,
        start: u8,
    },
}

/// What the reservations hold together.
#[derive(Debug, Default)]
struct Held {
    cores: std::collections::BTreeSet<u32>,
    memory_mib: u64,
    disk_mib: u64,
    whole: std::collections::BTreeSet<u32>,
    /// Slot mask per sliced GPU.
    slots: std::collections::BTreeMap<u32, u8>,
}

fn held(capacity: &HostCapacity, reservations: &[Reservation]) -> Result<Held, Violation> {
    let mut h = Held::default();
    for r in reservations {
        for &c in &r.cores {
            if c >= capacity.cores || !h.cores.insert(c) {
                return Err(Violation::Core(c));
            }
        }
        h.memory_mib = h.memory_mib.saturating_add(r.memory_mib);
        h.disk_mib = h.disk_mib.saturating_add(r.disk_mib);
        for claim in &r.gpus {
            match claim {
                GpuClaim::Whole { gpu } => {
                    let ok = capacity.gpus.iter().any(|g| g.index == *gpu && !g.mig)
                        && !h.slots.contains_key(gpu)
                        && h.whole.insert(*gpu);
                    if !ok {
                        return Err(Violation::Gpu(*gpu));
                    }
                }
                GpuClaim::Mig {
                    gpu,
                    profile,
                    start,
                } => {
                    let bad = || Violation::Mig {
                        gpu: *gpu,
                        profile: profile.clone(),
                        start: *start,
                    };
                    if !capacity.gpus.iter().any(|g| g.index == *gpu && g.mig)
                        || h.whole.contains(gpu)
                    {
                        return Err(Violation::Gpu(*gpu));
                    }
                    let p = mig_profile(profile).ok_or_else(bad)?;
                    if !p.starts.contains(start) {
                        return Err(bad());
                    }
                    let mask = p.mask_at(*start);
                    let used = h.slots.entry(*gpu).or_default();
                    if *used & mask != 0 {
                        return Err(bad());
                    }
                    *used |= mask;
                }
            }
        }
    }
    for (resource, reserved, cap) in [
        ("memory", h.memory_mib, capacity.memory_mib),
        ("disk", h.disk_mib, capacity.disk_mib),
    ] {
        if reserved > cap {
            return Err(Violation::Overcommitted {
                resource,
                reserved,
                capacity: cap,
            });
        }
    }
    Ok(h)
}

/// Whether the reservations fit the host together (the invariants above).
pub fn check(capacity: &HostCapacity, reservations: &[Reservation]) -> Result<(), Violation> {
    held(capacity, reservations).map(|_| ())
}

/// The MIG profiles a GPU model offers (the tables above), by its NVML
/// name (`NVIDIA H200`, `NVIDIA H100 80GB HBM3`); none for a model without
/// a table here.
pub fn mig_profiles_for(model: &str) -> &'static [MigProfile] {
    let model = model.to_ascii_uppercase();
    if model.contains("H200") {
        H200_PROFILES
    } else if model.contains("H100") {
        H100_PROFILES
    } else {
        &[]
    }
}

/// What is left of a host beside its reservations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Free {
    /// Free core numbers, ascending.
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    pub disk_mib: u64,
    /// GPUs no reservation touches.
    pub whole_gpus: Vec<u32>,
    /// Per MIG-mode GPU, the compute slots (of [`MIG_SLOTS`]) still free.
    pub mig_slots: Vec<FreeMig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeMig {
    pub gpu: u32,
    pub free_slots: u8,
}

/// What `reservations` leave free of `capacity` (which they must
/// [`check`] against).
pub fn free(capacity: &HostCapacity, reservations: &[Reservation]) -> Result<Free, Violation> {
    let h = held(capacity, reservations)?;
    Ok(Free {
        cores: (0..capacity.cores)
            .filter(|c| !h.cores.contains(c))
            .collect(),
        memory_mib: capacity.memory_mib - h.memory_mib,
        disk_mib: capacity.disk_mib - h.disk_mib,
        whole_gpus: capacity
            .gpus
            .iter()
            .filter(|g| !g.mig && !h.whole.contains(&g.index))
            .map(|g| g.index)
            .collect(),
        mig_slots: capacity
            .gpus
            .iter()
            .filter(|g| g.mig)
            .map(|g| FreeMig {
                gpu: g.index,
                // Slot 7 is memory only (no compute): count the seven
                // compute slots.
                free_slots: (0..MIG_SLOTS - 1)
                    .filter(|bit| h.slots.get(&g.index).copied().unwrap_or(0) & (1 << bit) == 0)
                    .count() as u8,
            })
            .collect(),
    })
}

/// Largest host a capacity may declare (sanity bounds, not policy).
const MAX_CORES: u32 = 4096;
const MAX_GPUS: usize = 64;

impl HostCapacity {
    /// What is wrong with a declared or reported capacity, if anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.cores == 0 || self.cores > MAX_CORES {
            return Err(format!("cores must be between 1 and {MAX_CORES}"));
        }
        if self.memory_mib == 0 {
            return Err("memory_mib must be positive".into());
        }
        if self.gpus.len() > MAX_GPUS {
            return Err(format!("at most {MAX_GPUS} GPUs"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for g in &self.gpus {
            if !seen.insert(g.index) {
                return Err(format!("GPU index {} appears twice", g.index));
            }
            if g.model.trim().is_empty() || g.model.len() > 128 {
                return Err(format!(
                    "GPU {}: a model name of 1 to 128 characters",
                    g.index
                ));
            }
        }
        Ok(())
    }
}

/// Places `shape` beside `reservations` (which must [`check`]): the lowest
/// free cores, and the first GPU and legal start with room. Deterministic:
/// the same inputs give the same answer.
pub fn place(
    capacity: &HostCapacity,
    reservations: &[Reservation],
    shape: &Shape,
) -> Result<Reservation, PlacementError> {
    if shape.cores == 0 {
        return Err(PlacementError::NoCores);
    }
    // Reservations read from the store were checked when they were made;
    // a broken set places nothing.
    let h = held(capacity, reservations).map_err(PlacementError::Inconsistent)?;
    let free_cores: Vec<u32> = (0..capacity.cores)
        .filter(|c| !h.cores.contains(c))
        .collect();
    if free_cores.len() < shape.cores as usize {
        return Err(PlacementError::Insufficient {
            resource: "cores",
            wanted: u64::from(shape.cores),
            free: free_cores.len() as u64,
        });
    }
    for (resource, wanted, used, cap) in [
        (
            "memory (MiB)",
            shape.memory_mib,
            h.memory_mib,
            capacity.memory_mib,
        ),
        ("disk (MiB)", shape.disk_mib, h.disk_mib, capacity.disk_mib),
    ] {
        let free = cap.saturating_sub(used);
        if wanted > free {
            return Err(PlacementError::Insufficient {
                resource,
                wanted,
                free,
            });
        }
    }
    let gpus = match &shape.gpu {
        GpuShape::None => Vec::new(),
        GpuShape::Whole { count } => {
            let free: Vec<u32> = capacity
                .gpus
                .iter()
                .filter(|g| !g.mig && !h.whole.contains(&g.index))
                .map(|g| g.index)
                .collect();
            if free.len() < *count as usize {
                return Err(PlacementError::Insufficient {
                    resource: "whole GPUs",
                    wanted: u64::from(*count),
                    free: free.len() as u64,
                });
            }
            free.into_iter()
                .take(*count as usize)
                .map(|gpu| GpuClaim::Whole { gpu })
                .collect()
        }
        GpuShape::Mig { profile } => {
            let p = mig_profile(profile)
                .ok_or_else(|| PlacementError::UnknownProfile(profile.clone()))?;
            let spot = capacity.gpus.iter().filter(|g| g.mig).find_map(|g| {
                let used = h.slots.get(&g.index).copied().unwrap_or(0);
                p.starts
                    .iter()
                    .find(|&&s| used & p.mask_at(s) == 0)
                    .map(|&s| (g.index, s))
            });
            let (gpu, start) = spot.ok_or_else(|| PlacementError::NoMigSlot(profile.clone()))?;
            vec![GpuClaim::Mig {
                gpu,
                profile: p.name.to_owned(),
                start,
            }]
        }
    };
    Ok(Reservation {
        cores: free_cores.into_iter().take(shape.cores as usize).collect(),
        memory_mib: shape.memory_mib,
        disk_mib: shape.disk_mib,
        gpus,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn host(cores: u32, mig_gpus: u32, whole_gpus: u32) -> HostCapacity {
        let gpu = |index, mig| GpuCapacity {
            index,
            model: "NVIDIA H200".into(),
            memory_mib: 144_384,
            mig,
        };
        HostCapacity {
            cores,
            memory_mib: u64::from(cores) * 4096,
            disk_mib: u64::from(cores) * 10_240,
            gpus: (0..mig_gpus)
                .map(|i| gpu(i, true))
                .chain((mig_gpus..mig_gpus + whole_gpus).map(|i| gpu(i, false)))
                .collect(),
        }
    }

    fn cpu(cores: u32) -> Shape {
        Shape {
            cores,
            memory_mib: u64::from(cores) * 2048,
            disk_mib: 1024,
            gpu: GpuShape::None,
        }
    }

    #[test]
    fn cpu_slices_fill_a_host_exactly_and_the_next_is_refused() {
        let h = host(8, 0, 0);
        let mut placed = vec![];
        for _ in 0..4 {
            placed.push(place(&h, &placed, &cpu(2)).unwrap());
        }
        assert_eq!(placed[3].cores, vec![6, 7]);
        check(&h, &placed).unwrap();
        let refused = place(&h, &placed, &cpu(2)).unwrap_err();
        assert_eq!(
            refused,
            PlacementError::Insufficient {
                resource: "cores",
                wanted: 2,
                free: 0
            }
        );
        assert!(refused.to_string().contains("2 wanted, 0 free"));
        // Released capacity is reused: the freed cores come back.
        placed.remove(1);
        assert_eq!(place(&h, &placed, &cpu(2)).unwrap().cores, vec![2, 3]);
    }

    #[test]
    fn free_is_what_the_reservations_leave() {
        let h = host(8, 1, 1);
        let mut placed = vec![place(&h, &[], &cpu(2)).unwrap()];
        let slice = Shape {
            gpu: GpuShape::Mig {
                profile: "3g.71gb".into(),
            },
            ..cpu(1)
        };
        placed.push(place(&h, &placed, &slice).unwrap());
        let f = free(&h, &placed).unwrap();
        assert_eq!(f.cores, vec![3, 4, 5, 6, 7]);
        assert_eq!(f.memory_mib, 8 * 4096 - 3 * 2048);
        assert_eq!(f.disk_mib, 8 * 10_240 - 2 * 1024);
        assert_eq!(f.whole_gpus, vec![1]);
        assert_eq!(
            f.mig_slots,
            vec![FreeMig {
                gpu: 0,
                free_slots: 3
            }]
        );
        assert_eq!(free(&h, &[]).unwrap().cores.len(), 8);
    }

    #[test]
    fn profiles_follow_the_model() {
        assert_eq!(mig_profiles_for("NVIDIA H200")[0].name, "1g.18gb");
        assert_eq!(mig_profiles_for("NVIDIA H100 80GB HBM3")[5].name, "7g.80gb");
        assert!(mig_profiles_for("NVIDIA GeForce RTX 4090").is_empty());
    }

    #[test]
    fn a_capacity_is_validated() {
        assert!(host(8, 1, 1).validate().is_ok());
        assert!(host(0, 0, 0).validate().unwrap_err().contains("cores"));
        let mut twice = host(8, 2, 0);
        twice.gpus[1].index = 0;
        assert!(twice.validate().unwrap_err().contains("twice"));
    }

    #[test]
    fn a_broken_set_of_reservations_places_nothing() {
        let h = host(4, 0, 0);
        let twice = place(&h, &[], &cpu(2)).unwrap();
        assert_eq!(
            place(&h, &[twice.clone(), twice], &cpu(1)),
            Err(PlacementError::Inconsistent(Violation::Core(0)))
        );
        assert_eq!(place(&h, &[], &cpu(0)), Err(PlacementError::NoCores));
    }

    #[test]
    fn memory_is_a_limit_of_its_own() {
        let h = host(8, 0, 0);
        let big = Shape {
            memory_mib: h.memory_mib,
            ..cpu(1)
        };
        let first = place(&h, &[], &big).unwrap();
        assert!(matches!(
            place(&h, &[first], &cpu(1)),
            Err(PlacementError::Insufficient {
                resource: "memory (MiB)",
                ..
            })
        ));
    }

    #[test]
    fn an_h200_takes_seven_1g_slices_and_no_eighth() {
        let h = host(64, 1, 0);
        let slice = |p: &str| Shape {
            gpu: GpuShape::Mig { profile: p.into() },
            ..cpu(1)
        };
        let mut placed = vec![];
        for want in 0..7u8 {
            let r = place(&h, &placed, &slice("1g.18gb")).unwrap();
            assert_eq!(
                r.gpus,
                vec![GpuClaim::Mig {
                    gpu: 0,
                    profile: "1g.18gb".into(),
                    start: want
                }]
            );
            placed.push(r);
        }
        assert_eq!(
            place(&h, &placed, &slice("1g.18gb")),
            Err(PlacementError::NoMigSlot("1g.18gb".into()))
        );
    }

    #[test]
    fn legal_starts_decide_not_free_slots_alone() {
        let h = host(64, 1, 0);
        let at = |profile: &str, start| Reservation {
            cores: vec![],
            memory_mib: 0,
            disk_mib: 0,
            gpus: vec![GpuClaim::Mig {
                gpu: 0,
                profile: profile.into(),
                start,
            }],
        };
        // 1g slices at 1 and 5 leave six slots free, yet no 3g (starts 0
        // and 4, four slots each) fits.
        let taken = [at("1g.18gb", 1), at("1g.18gb", 5)];
        check(&h, &taken).unwrap();
        let three = Shape {
            gpu: GpuShape::Mig {
                profile: "3g.71gb".into(),
            },
            ..cpu(1)
        };
        assert_eq!(
            place(&h, &taken, &three),
            Err(PlacementError::NoMigSlot("3g.71gb".into()))
        );
        // A 2g fits at 2 (0 is blocked by slot 1).
        let two = Shape {
            gpu: GpuShape::Mig {
                profile: "2g.35gb".into(),
            },
            ..cpu(1)
        };
        assert_eq!(
            place(&h, &taken, &two).unwrap().gpus,
            vec![GpuClaim::Mig {
                gpu: 0,
                profile: "2g.35gb".into(),
                start: 2
            }]
        );
        // An illegal start is a violation even on free slots.
        assert!(matches!(
            check(&h, &[at("2g.35gb", 1)]),
            Err(Violation::Mig { start: 1, .. })
        ));
        assert!(matches!(
            check(&h, &[at("7g.141gb", 0), at("1g.18gb", 6)]),
            Err(Violation::Mig { .. })
        ));
    }

    #[test]
    fn whole_gpus_and_slices_do_not_mix() {
        let h = host(16, 1, 2);
        let whole = Shape {
            gpu: GpuShape::Whole { count: 2 },
            ..cpu(2)
        };
        let r = place(&h, &[], &whole).unwrap();
        assert_eq!(
            r.gpus,
            vec![GpuClaim::Whole { gpu: 1 }, GpuClaim::Whole { gpu: 2 }],
            "the MIG GPU is not handed out whole"
        );
        assert!(matches!(
            place(
                &h,
                &[r],
                &Shape {
                    gpu: GpuShape::Whole { count: 1 },
                    ..cpu(1)
                }
            ),
            Err(PlacementError::Insufficient {
                resource: "whole GPUs",
                ..
            })
        ));
        let sliced_whole = Reservation {
            cores: vec![],
            memory_mib: 0,
            disk_mib: 0,
            gpus: vec![GpuClaim::Whole { gpu: 0 }],
        };
        assert_eq!(check(&h, &[sliced_whole]), Err(Violation::Gpu(0)));
    }

    #[test]
    fn profiles_stay_inside_the_gpu() {
        for p in H200_PROFILES.iter().chain(H100_PROFILES) {
            for &s in p.starts {
                assert!(s + p.size <= MIG_SLOTS, "{} at {s}", p.name);
                assert_eq!(p.mask_at(s).count_ones(), u32::from(p.size));
            }
        }
    }

    fn any_shape() -> impl Strategy<Value = Shape> {
        let gpu = prop_oneof![
            Just(GpuShape::None),
            (1u32..=2).prop_map(|count| GpuShape::Whole { count }),
            proptest::sample::select(H200_PROFILES.iter().map(|p| p.name).collect::<Vec<_>>())
                .prop_map(|p| GpuShape::Mig { profile: p.into() }),
        ];
        (1u32..=6, 0u64..=20_000, 0u64..=50_000, gpu).prop_map(
            |(cores, memory_mib, disk_mib, gpu)| Shape {
                cores,
                memory_mib,
                disk_mib,
                gpu,
            },
        )
    }

    /// Whether any legal start of `profile` is free on some MIG GPU.
    fn mig_room(h: &HostCapacity, placed: &[Reservation], profile: &str) -> bool {
        let p = mig_profile(profile).unwrap();
        h.gpus.iter().filter(|g| g.mig).any(|g| {
            p.starts.iter().any(|&s| {
                let mut with = placed.to_vec();
                with.push(Reservation {
                    cores: vec![],
                    memory_mib: 0,
                    disk_mib: 0,
                    gpus: vec![GpuClaim::Mig {
                        gpu: g.index,
                        profile: profile.into(),
                        start: s,
                    }],
                });
                check(h, &with).is_ok()
            })
        })
    }

    proptest! {
        /// Any sequence of placements and releases keeps every invariant,
        /// and a refusal is never wrong about MIG room.
        #[test]
        fn placements_never_overlap_or_overcommit(
            ops in proptest::collection::vec((any_shape(), any::<bool>(), any::<prop::sample::Index>()), 1..60),
        ) {
            let h = host(24, 2, 2);
            let mut placed: Vec<Reservation> = vec![];
            for (shape, release, which) in ops {
                if release && !placed.is_empty() {
                    placed.remove(which.index(placed.len()));
                }
                match place(&h, &placed, &shape) {
                    Ok(r) => {
                        prop_assert_eq!(r.cores.len() as u32, shape.cores);
                        placed.push(r);
                    }
                    Err(PlacementError::NoMigSlot(p)) => {
                        prop_assert!(!mig_room(&h, &placed, &p), "refused {} with room", p);
                    }
                    Err(_) => {}
                }
                prop_assert_eq!(check(&h, &placed), Ok(()));
            }
        }
    }
}
