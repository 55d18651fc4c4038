//! SKUs: the named shapes allocations are rented in, each with a price per
//! minute in integer minor units (design §11). A CPU slice (`cpu.2c4g`:
//! cores, memory, disk), a MIG slice of a GPU by NVIDIA's profile name
//! (`gpu.h200.3g.71gb`), or whole GPUs. The catalog comes from
//! configuration; this module only says what a valid catalog is.

use crate::billing::price::Currency;
use crate::placement::{mig_profile, GpuShape, Shape};
use serde::{Deserialize, Serialize};

/// One rentable shape and its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    pub name: String,
    #[serde(flatten)]
    pub shape: Shape,
    /// Minor units charged for each started minute.
    pub price_per_minute_minor: u64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("SKU name `{0}` must be 1 to 64 characters of a-z, 0-9, `.`, `-` and `_`, starting with a letter")]
    Name(String),
    #[error("SKU `{0}` is defined twice")]
    Duplicate(String),
    #[error("SKU `{name}`: {reason}")]
    Shape { name: String, reason: String },
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Sku {
    /// Checks the SKU on its own.
    pub fn validate(&self) -> Result<(), SkuError> {
        if !valid_name(&self.name) {
            return Err(SkuError::Name(self.name.clone()));
        }
        let bad = |reason: &str| SkuError::Shape {
            name: self.name.clone(),
            reason: reason.to_owned(),
        };
        if self.shape.cores == 0 {
            return Err(bad("needs at least one core"));
        }
        if self.shape.memory_mib == 0 {
            return Err(bad("needs some memory"));
        }
        match &self.shape.gpu {
            GpuShape::None => {}
            GpuShape::Whole { count: 0 } => return Err(bad("asks for zero whole GPUs")),
            GpuShape::Whole { .. } => {}
            GpuShape::Mig { profile } => {
                if mig_profile(profile).is_none() {
                    return Err(bad(&format!("unknown MIG profile `{profile}`")));
                }
            }
        }
        Ok(())
    }

    /// The charge for `minutes` started minutes.
    pub fn charge(&self, minutes: u64) -> Option<u64> {
        self.price_per_minute_minor.checked_mul(minutes)
    }
}

/// The SKUs on offer: valid, with unique names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkuCatalog {
    skus: Vec<Sku>,
}

impl SkuCatalog {
    pub fn new(skus: Vec<Sku>) -> Result<Self, SkuError> {
        let mut seen = std::collections::BTreeSet::new();
        for sku in &skus {
            sku.validate()?;
            if !seen.insert(sku.name.as_str()) {
                return Err(SkuError::Duplicate(sku.name.clone()));
            }
        }
        Ok(Self { skus })
    }

    pub fn get(&self, name: &str) -> Option<&Sku> {
        self.skus.iter().find(|s| s.name == name)
    }

    pub fn skus(&self) -> &[Sku] {
        &self.skus
    }

    /// The SKUs every installation starts with: CPU slices, H200 MIG
    /// slices and a whole H200 (prices in USD cents per minute, meant to be
    /// replaced by the operator's price book).
    pub fn defaults() -> Self {
        let cpu = |name: &str, cores: u32, memory_gib: u64, price| Sku {
            name: name.to_owned(),
            shape: Shape {
                cores,
                memory_mib: memory_gib * 1024,
                disk_mib: u64::from(cores) * 10 * 1024,
                gpu: GpuShape::None,
            },
            price_per_minute_minor: price,
            currency: Currency::usd(),
        };
        // H200 MIG slices: host cores, memory and disk in proportion to
        // the slice's compute share; then the whole card.
        let gpu = |name: String, compute: u32, gpu: GpuShape, price| Sku {
            name,
            shape: Shape {
                cores: 2 * compute,
                memory_mib: u64::from(compute) * 16 * 1024,
                disk_mib: u64::from(compute) * 50 * 1024,
                gpu,
            },
            price_per_minute_minor: price,
            currency: Currency::usd(),
        };
        let mut skus = vec![
            cpu("cpu.2c4g", 2, 4, 1),
            cpu("cpu.4c8g", 4, 8, 2),
            cpu("cpu.8c16g", 8, 16, 4),
        ];
        skus.extend(crate::placement::H200_PROFILES.iter().map(|p| {
            gpu(
                format!("gpu.h200.{}", p.name),
                u32::from(p.compute),
                GpuShape::Mig {
                    profile: p.name.to_owned(),
                },
                6 * u64::from(p.compute),
            )
        }));
        skus.push(gpu(
            "gpu.h200.x1".into(),
            8,
            GpuShape::Whole { count: 1 },
            50,
        ));
        Self { skus }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sku(name: &str, gpu: GpuShape) -> Sku {
        Sku {
            name: name.into(),
            shape: Shape {
                cores: 4,
                memory_mib: 8192,
                disk_mib: 0,
                gpu,
            },
            price_per_minute_minor: 15,
            currency: "USD".parse().unwrap(),
        }
    }

    #[test]
    fn a_catalog_of_cpu_mig_and_whole_gpu_skus() {
        let catalog = SkuCatalog::new(vec![
            sku("cpu.4c8g", GpuShape::None),
            sku(
                "gpu.h200.3g.71gb",
                GpuShape::Mig {
                    profile: "3g.71gb".into(),
                },
            ),
            sku("gpu.h200x2", GpuShape::Whole { count: 2 }),
        ])
        .unwrap();
        assert_eq!(catalog.skus().len(), 3);
        assert_eq!(catalog.get("gpu.h200x2").unwrap().charge(60), Some(900));
        assert!(catalog.get("cpu.64c").is_none());
        assert!(SkuCatalog::new(SkuCatalog::defaults().skus().to_vec()).is_ok());
    }

    #[test]
    fn bad_skus_are_named() {
        let err = |s: Vec<Sku>| SkuCatalog::new(s).unwrap_err().to_string();
        assert!(err(vec![sku("CPU", GpuShape::None)]).contains("`CPU`"));
        assert!(
            err(vec![sku("a", GpuShape::None), sku("a", GpuShape::None)]).contains("defined twice")
        );
        assert!(err(vec![sku(
            "gpu.x",
            GpuShape::Mig {
                profile: "5g.99gb".into()
            }
        )])
        .contains("unknown MIG profile `5g.99gb`"));
        assert!(err(vec![sku("gpu.none", GpuShape::Whole { count: 0 })]).contains("zero"));
        let mut no_cores = sku("cpu.0", GpuShape::None);
        no_cores.shape.cores = 0;
        assert!(err(vec![no_cores]).contains("at least one core"));
    }

    #[test]
    fn a_sku_reads_from_configuration() {
        let parsed: Sku = serde_json::from_value(serde_json::json!({
            "name": "gpu.h200.1g.18gb",
            "cores": 2,
            "memory_mib": 16384,
            "disk_mib": 51200,
            "gpu": {"kind": "mig", "profile": "1g.18gb"},
            "price_per_minute_minor": 4,
            "currency": "EUR"
        }))
        .unwrap();
        parsed.validate().unwrap();
        assert_eq!(
            parsed.shape.gpu,
            GpuShape::Mig {
                profile: "1g.18gb".into()
            }
        );
        assert_eq!(parsed.charge(u64::MAX), None, "overflow is no charge");
    }
}
