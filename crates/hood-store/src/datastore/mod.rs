//! [`SqlStore`]: the one implementation of every store trait, for SQLite
//! and PostgreSQL alike. One file per resource, each implementing that
//! resource's trait with queries written once against the dialect
//! abstraction (`crate::db`) and rows decoded through `crate::model`.
//!
//! Conventions: a method that writes more than one row (or reads before it
//! writes) runs in one [`Pool::begin_write`] transaction; helpers that work
//! on the caller's transaction take `&mut Tx<'_>` so use cases can compose
//! them (node creation with its workflow, a health cycle's writes).

use crate::db::Pool;
use crate::StoreResult;

mod artifact;
mod edge;
mod fleet;
mod health;
mod identity;
mod incident;
mod lease;
mod node;
mod notification;
mod outbox;
mod schema;
mod uptime;
mod usage;
mod workflow;

/// The store over one database, SQLite (embedded mode) or PostgreSQL
/// (cluster mode). Implements [`crate::Store`] and so every resource
/// trait; share it as `Arc<SqlStore>` and coerce to the `Arc<dyn …>` a
/// service needs.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
}

impl SqlStore {
    /// Opens a store from a URL: `sqlite://PATH` (created if missing) or
    /// `postgres://…`. Does not migrate: in cluster mode that is `hood
    /// migrate`'s job, never a server's.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Ok(Self {
            pool: Pool::open(url).await?,
        })
    }
}
