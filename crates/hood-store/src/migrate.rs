//! Hood's own small migrator, shared by both dialects.
//!
//! Why not `sqlx::migrate!`: it needs sqlx's macros feature, and we want the
//! same bookkeeping on both backends with a checksum that refuses edited
//! history. Each dialect embeds its own SQL files (the DDL differs), but the
//! versions and names must match one to one so that a version number means
//! the same schema everywhere.
//!
//! Applied migrations are tracked in `schema_migrations(version, name,
//! checksum, applied_at)`. The planning rules live here as pure functions;
//! the store executes them (`datastore/schema.rs`: inside one transaction,
//! under the dialect's migration lock, `pg_advisory_lock` on PostgreSQL and
//! `BEGIN IMMEDIATE` on SQLite).

use crate::{StoreError, StoreResult};

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Strictly increasing, starting at 1, without gaps.
    pub version: i64,
    /// Short name, recorded for humans reading `schema_migrations`.
    pub name: &'static str,
    /// The SQL script (may hold several statements).
    pub sql: &'static str,
}

impl Migration {
    /// Checksum of the script, compared against the recorded one.
    pub fn checksum(&self) -> String {
        checksum(self.sql)
    }
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

/// SQLite migrations, in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sql: include_str!("../migrations/sqlite/0001_identity.sql"),
    },
    Migration {
        version: 2,
        name: "workflows",
        sql: include_str!("../migrations/sqlite/0002_workflows.sql"),
    },
    Migration {
        version: 3,
        name: "fleet",
        sql: include_str!("../migrations/sqlite/0003_fleet.sql"),
    },
    Migration {
        version: 4,
        name: "artifacts",
        sql: include_str!("../migrations/sqlite/0004_artifacts.sql"),
    },
    Migration {
        version: 5,
        name: "nodes",
        sql: include_str!("../migrations/sqlite/0005_nodes.sql"),
    },
    Migration {
        version: 6,
        name: "health",
        sql: include_str!("../migrations/sqlite/0006_health.sql"),
    },
    Migration {
        version: 7,
        name: "edge",
        sql: include_str!("../migrations/sqlite/0007_edge.sql"),
    },
    Migration {
        version: 8,
        name: "retention",
        sql: include_str!("../migrations/sqlite/0008_retention.sql"),
    },
    Migration {
        version: 9,
        name: "ledger",
        sql: include_str!("../migrations/sqlite/0009_ledger.sql"),
    },
    Migration {
        version: 10,
        name: "status_page",
        sql: include_str!("../migrations/sqlite/0010_status_page.sql"),
    },
    Migration {
        version: 11,
        name: "meter_events",
        sql: include_str!("../migrations/sqlite/0011_meter_events.sql"),
    },
    Migration {
        version: 12,
        name: "billing",
        sql: include_str!("../migrations/sqlite/0012_billing.sql"),
    },
    Migration {
        version: 13,
        name: "credits",
        sql: include_str!("../migrations/sqlite/0013_credits.sql"),
    },
    Migration {
        version: 14,
        name: "budgets",
        sql: include_str!("../migrations/sqlite/0014_budgets.sql"),
    },
    Migration {
        version: 15,
        name: "credit_notes",
        sql: include_str!("../migrations/sqlite/0015_credit_notes.sql"),
    },
    Migration {
        version: 16,
        name: "checkouts",
        sql: include_str!("../migrations/sqlite/0016_checkouts.sql"),
    },
    Migration {
        version: 17,
        name: "rollouts",
        sql: include_str!("../migrations/sqlite/0017_rollouts.sql"),
    },
    Migration {
        version: 18,
        name: "node_snapshots",
        sql: include_str!("../migrations/sqlite/0018_node_snapshots.sql"),
    },
    Migration {
        version: 19,
        name: "node_labels",
        sql: include_str!("../migrations/sqlite/0019_node_labels.sql"),
    },
    Migration {
        version: 20,
        name: "allocations",
        sql: include_str!("../migrations/sqlite/0020_allocations.sql"),
    },
    Migration {
        version: 21,
        name: "audit_log",
        sql: include_str!("../migrations/sqlite/0021_audit_log.sql"),
    },
    Migration {
        version: 22,
        name: "allocation_activity",
        sql: include_str!("../migrations/sqlite/0022_allocation_activity.sql"),
    },
    Migration {
        version: 23,
        name: "allocation_budgets",
        sql: include_str!("../migrations/sqlite/0023_allocation_budgets.sql"),
    },
    Migration {
        version: 24,
        name: "allocation_idle",
        sql: include_str!("../migrations/sqlite/0024_allocation_idle.sql"),
    },
    Migration {
        version: 25,
        name: "storage",
        sql: include_str!("../migrations/sqlite/0025_storage.sql"),
    },
    Migration {
        version: 26,
        name: "service_accounts",
        sql: include_str!("../migrations/sqlite/0026_service_accounts.sql"),
    },
    Migration {
        version: 27,
        name: "s3",
        sql: include_str!("../migrations/sqlite/0027_s3.sql"),
    },
    Migration {
        version: 28,
        name: "object_md5",
        sql: include_str!("../migrations/sqlite/0028_object_md5.sql"),
    },
    Migration {
        version: 29,
        name: "ssh_keys",
        sql: include_str!("../migrations/sqlite/0029_ssh_keys.sql"),
    },
    Migration {
        version: 30,
        name: "feed",
        sql: include_str!("../migrations/sqlite/0030_feed.sql"),
    },
    Migration {
        version: 31,
        name: "containers",
        sql: include_str!("../migrations/sqlite/0031_containers.sql"),
    },
    Migration {
        version: 32,
        name: "allocation_ports",
        sql: include_str!("../migrations/sqlite/0032_allocation_ports.sql"),
    },
    Migration {
        version: 33,
        name: "host_metrics",
        sql: include_str!("../migrations/sqlite/0033_host_metrics.sql"),
    },
];

/// PostgreSQL migrations, in order (same versions and names as [`SQLITE`]).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sql: include_str!("../migrations/postgres/0001_identity.sql"),
    },
    Migration {
        version: 2,
        name: "workflows",
        sql: include_str!("../migrations/postgres/0002_workflows.sql"),
    },
    Migration {
        version: 3,
        name: "fleet",
        sql: include_str!("../migrations/postgres/0003_fleet.sql"),
    },
    Migration {
        version: 4,
        name: "artifacts",
        sql: include_str!("../migrations/postgres/0004_artifacts.sql"),
    },
    Migration {
        version: 5,
        name: "nodes",
        sql: include_str!("../migrations/postgres/0005_nodes.sql"),
    },
    Migration {
        version: 6,
        name: "health",
        sql: include_str!("../migrations/postgres/0006_health.sql"),
    },
    Migration {
        version: 7,
        name: "edge",
        sql: include_str!("../migrations/postgres/0007_edge.sql"),
    },
    Migration {
        version: 8,
        name: "retention",
        sql: include_str!("../migrations/postgres/0008_retention.sql"),
    },
    Migration {
        version: 9,
        name: "ledger",
        sql: include_str!("../migrations/postgres/0009_ledger.sql"),
    },
    Migration {
        version: 10,
        name: "status_page",
        sql: include_str!("../migrations/postgres/0010_status_page.sql"),
    },
    Migration {
        version: 11,
        name: "meter_events",
        sql: include_str!("../migrations/postgres/0011_meter_events.sql"),
    },
    Migration {
        version: 12,
        name: "billing",
        sql: include_str!("../migrations/postgres/0012_billing.sql"),
    },
    Migration {
        version: 13,
        name: "credits",
        sql: include_str!("../migrations/postgres/0013_credits.sql"),
    },
    Migration {
        version: 14,
        name: "budgets",
        sql: include_str!("../migrations/postgres/0014_budgets.sql"),
    },
    Migration {
        version: 15,
        name: "credit_notes",
        sql: include_str!("../migrations/postgres/0015_credit_notes.sql"),
    },
    Migration {
        version: 16,
        name: "checkouts",
        sql: include_str!("../migrations/postgres/0016_checkouts.sql"),
    },
    Migration {
        version: 17,
        name: "rollouts",
        sql: include_str!("../migrations/postgres/0017_rollouts.sql"),
    },
    Migration {
        version: 18,
        name: "node_snapshots",
        sql: include_str!("../migrations/postgres/0018_node_snapshots.sql"),
    },
    Migration {
        version: 19,
        name: "node_labels",
        sql: include_str!("../migrations/postgres/0019_node_labels.sql"),
    },
    Migration {
        version: 20,
        name: "allocations",
        sql: include_str!("../migrations/postgres/0020_allocations.sql"),
    },
    Migration {
        version: 21,
        name: "audit_log",
        sql: include_str!("../migrations/postgres/0021_audit_log.sql"),
    },
    Migration {
        version: 22,
        name: "allocation_activity",
        sql: include_str!("../migrations/postgres/0022_allocation_activity.sql"),
    },
    Migration {
        version: 23,
        name: "allocation_budgets",
        sql: include_str!("../migrations/postgres/0023_allocation_budgets.sql"),
    },
    Migration {
        version: 24,
        name: "allocation_idle",
        sql: include_str!("../migrations/postgres/0024_allocation_idle.sql"),
    },
    Migration {
        version: 25,
        name: "storage",
        sql: include_str!("../migrations/postgres/0025_storage.sql"),
    },
    Migration {
        version: 26,
        name: "service_accounts",
        sql: include_str!("../migrations/postgres/0026_service_accounts.sql"),
    },
    Migration {
        version: 27,
        name: "s3",
        sql: include_str!("../migrations/postgres/0027_s3.sql"),
    },
    Migration {
        version: 28,
        name: "object_md5",
        sql: include_str!("../migrations/postgres/0028_object_md5.sql"),
    },
    Migration {
        version: 29,
        name: "ssh_keys",
        sql: include_str!("../migrations/postgres/0029_ssh_keys.sql"),
    },
    Migration {
        version: 30,
        name: "feed",
        sql: include_str!("../migrations/postgres/0030_feed.sql"),
    },
    Migration {
        version: 31,
        name: "containers",
        sql: include_str!("../migrations/postgres/0031_containers.sql"),
    },
    Migration {
        version: 32,
        name: "allocation_ports",
        sql: include_str!("../migrations/postgres/0032_allocation_ports.sql"),
    },
    Migration {
        version: 33,
        name: "host_metrics",
        sql: include_str!("../migrations/postgres/0033_host_metrics.sql"),
    },
];

/// The tracking table. Portable DDL: the same text works on both dialects.
pub(crate) const TRACKING_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version BIGINT PRIMARY KEY NOT NULL, \
    name TEXT NOT NULL, \
    checksum TEXT NOT NULL, \
    applied_at BIGINT NOT NULL)";

/// The schema version this binary needs: the last migration's version.
pub fn latest_version(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// FNV-1a (64 bit) of the script, as 16 hex digits. Not a security measure:
/// it only detects a migration edited after it was applied, so a fast,
/// dependency-free hash is enough.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The migrations still to apply, in order.
///
/// Fails with `SchemaTooNew` when the database records a version this binary
/// does not know, and with `Corrupt` when an applied migration's checksum
/// differs from the embedded script (history was edited: refuse rather
/// than guess).
pub fn pending<'m>(
    known: &'m [Migration],
    applied: &[AppliedMigration],
) -> StoreResult<Vec<&'m Migration>> {
    let expected = latest_version(known);
    let found = applied.iter().map(|a| a.version).max().unwrap_or(0);
    if found > expected
        || applied
            .iter()
            .any(|a| !known.iter().any(|m| m.version == a.version))
    {
        return Err(StoreError::SchemaTooNew { found, expected });
    }
    for a in applied {
        if let Some(m) = known.iter().find(|m| m.version == a.version) {
            let sum = m.checksum();
            if a.checksum != sum {
                return Err(StoreError::Corrupt(format!(
                    "migration {} ({}) was changed after it was applied (recorded checksum {}, embedded {sum})",
                    a.version, a.name, a.checksum
                )));
            }
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

/// `Ok` only when every known migration is applied, unchanged, and nothing
/// newer is recorded.
pub fn check(known: &[Migration], applied: &[AppliedMigration]) -> StoreResult<()> {
    if pending(known, applied)?.is_empty() {
        Ok(())
    } else {
        Err(StoreError::SchemaOutOfDate {
            found: applied.iter().map(|a| a.version).max().unwrap_or(0),
            expected: latest_version(known),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(m: &Migration) -> AppliedMigration {
        AppliedMigration {
            version: m.version,
            name: m.name.to_owned(),
            checksum: m.checksum(),
        }
    }

    #[test]
    fn dialects_have_the_same_versions_in_order() {
        assert_eq!(SQLITE.len(), POSTGRES.len());
        for (i, (s, p)) in SQLITE.iter().zip(POSTGRES).enumerate() {
            assert_eq!(s.version, i as i64 + 1, "versions start at 1 without gaps");
            assert_eq!(s.version, p.version);
            assert_eq!(s.name, p.name);
            assert!(!s.sql.trim().is_empty() && !p.sql.trim().is_empty());
        }
    }

    #[test]
    fn checksum_is_stable_and_sensitive() {
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_eq!(checksum("a"), "af63dc4c8601ec8c");
        assert_ne!(
            checksum("CREATE TABLE a (x INT);"),
            checksum("CREATE TABLE a (x INT); ")
        );
    }

    #[test]
    fn plans_everything_on_an_empty_database_and_nothing_when_current() {
        assert_eq!(
            pending(SQLITE, &[]).map(|p| p.len()).ok(),
            Some(SQLITE.len())
        );
        let all: Vec<_> = SQLITE.iter().map(applied).collect();
        assert!(pending(SQLITE, &all).map(|p| p.is_empty()).unwrap_or(false));
        assert!(check(SQLITE, &all).is_ok());
        assert!(matches!(
            check(SQLITE, &[]),
            Err(StoreError::SchemaOutOfDate { found: 0, expected }) if expected == latest_version(SQLITE)
        ));
    }

    #[test]
    fn refuses_edited_history_and_unknown_versions() {
        let mut edited = applied(&SQLITE[0]);
        edited.checksum = "0000000000000000".into();
        assert!(matches!(
            pending(SQLITE, &[edited]),
            Err(StoreError::Corrupt(_))
        ));

        let mut all: Vec<_> = SQLITE.iter().map(applied).collect();
        all.push(AppliedMigration {
            version: latest_version(SQLITE) + 1,
            name: "future".into(),
            checksum: "x".into(),
        });
        assert!(matches!(
            pending(SQLITE, &all),
            Err(StoreError::SchemaTooNew { .. })
        ));
        assert!(matches!(
            check(SQLITE, &all),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
