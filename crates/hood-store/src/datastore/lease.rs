//! [`LeaderLeaseStore`] for [`SqlStore`], and [`check_fence`], the check
//! every leader-gated write makes on its own transaction.

use super::SqlStore;
use crate::db::{query, query_as, Tx};
use crate::lease::{LeaderLeaseStore, Lease};
use crate::model::health::LeaseRow;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::Timestamp;

/// Checks, on the caller's transaction, that `lease` is still held and
/// unexpired; on PostgreSQL the row lock also makes a concurrent takeover
/// wait until this transaction ends.
pub(crate) async fn check_fence(tx: &mut Tx<'_>, lease: &Lease, now: Timestamp) -> StoreResult<()> {
    let held = query(
        "UPDATE leader_leases SET expires_at = expires_at \
         WHERE name = $1 AND holder = $2 AND generation = $3 AND expires_at > $4",
    )
    .bind(&lease.name)
    .bind(&lease.holder)
    .bind(lease.generation)
    .bind(now.millis())
    .execute(tx)
    .await?;
    if held == 1 {
        Ok(())
    } else {
        Err(StoreError::Fenced(lease.name.clone()))
    }
}

#[async_trait]
impl LeaderLeaseStore for SqlStore {
    async fn acquire_leader_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>> {
        let expires = Timestamp(now.millis() + ttl_ms);
        let mut tx = self.pool.begin_write().await?;
        let current = query_as::<LeaseRow>(format!(
            "SELECT holder, generation, expires_at FROM leader_leases WHERE name = $1{}",
            self.pool.backend().for_update()
        ))
        .bind(name)
        .fetch_optional(&mut tx)
        .await?;
        let generation = match current {
            None => {
                let inserted = query(
                    "INSERT INTO leader_leases (name, holder, generation, acquired_at, expires_at) \
                     VALUES ($1, $2, 1, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(holder)
                .bind(now.millis())
                .bind(expires.millis())
                .execute(&mut tx)
                .await?;
                if inserted != 1 {
                    return Ok(None);
                }
                1
            }
            Some(current) => {
                let live = current.expires_at > now.millis();
                if current.holder == holder && live {
                    query(
                        "UPDATE leader_leases SET expires_at = $1 \
                         WHERE name = $2 AND generation = $3",
                    )
                    .bind(expires.millis())
                    .bind(name)
                    .bind(current.generation)
                    .execute(&mut tx)
                    .await?;
                    current.generation
                } else if live {
                    return Ok(None);
                } else {
                    // Expired: whoever takes it (even its old holder, whose
                    // writes since expiry were fenced) starts a new
                    // generation.
                    let taken = query(
                        "UPDATE leader_leases SET holder = $1, generation = $2, \
                         acquired_at = $3, expires_at = $4 WHERE name = $5 AND generation = $6",
                    )
                    .bind(holder)
                    .bind(current.generation + 1)
                    .bind(now.millis())
                    .bind(expires.millis())
                    .bind(name)
                    .bind(current.generation)
                    .execute(&mut tx)
                    .await?;
                    if taken != 1 {
                        return Ok(None);
                    }
                    current.generation + 1
                }
            }
        };
        tx.commit().await?;
        Ok(Some(Lease {
            name: name.into(),
            holder: holder.into(),
            generation,
            expires_at: expires,
        }))
    }

    async fn release_leader_lease(&self, lease: &Lease) -> StoreResult<()> {
        query(
            "UPDATE leader_leases SET expires_at = 0 \
             WHERE name = $1 AND holder = $2 AND generation = $3",
        )
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(lease.generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn leader_lease(&self, name: &str) -> StoreResult<Option<Lease>> {
        let row = query_as::<LeaseRow>(
            "SELECT holder, generation, expires_at FROM leader_leases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Lease {
            name: name.to_owned(),
            holder: r.holder,
            generation: r.generation,
            expires_at: Timestamp::from_millis(r.expires_at),
        }))
    }
}
