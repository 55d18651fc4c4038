//! Shared harness of the store's integration tests: a fresh database of
//! each backend, raw SQL access, and the `conformance!` macro that runs one
//! test body against SQLite and against PostgreSQL.
//!
//! Use it from a test file with `#[macro_use] mod support;`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use hood_domain::lifecycle::HostState;
use hood_domain::{HostId, OrgId, Timestamp};
use hood_store::fleet::Host;
use hood_store::{Backend, Store};
use hood_testkit::PgDatabase;
use std::sync::Arc;

pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
}

/// A fresh, un-migrated database of one backend plus raw SQL access.
pub struct Harness {
    /// Declared first so the pool closes before the database goes away.
    pub store: Arc<dyn Store>,
    pub url: String,
    pub backend: Backend,
    _guard: Guard,
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = hood_testkit::sqlite_url(&dir);
        let store = hood_store::connect(&url).await.unwrap();
        Self {
            store,
            url,
            backend: Backend::Sqlite,
            _guard: Guard::Sqlite(dir),
        }
    }

    pub async fn postgres(test: &str) -> Option<Self> {
        let db = PgDatabase::create(test).await?;
        let url = db.url.clone();
        let store = hood_store::connect(&url).await.unwrap();
        Some(Self {
            store,
            url,
            backend: Backend::Postgres,
            _guard: Guard::Postgres(db),
        })
    }

    /// The store, migrated.
    pub async fn migrated(&self) -> &dyn Store {
        self.store.migrate().await.unwrap();
        &*self.store
    }

    /// A second, independent store on the same database.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        hood_store::connect(&self.url).await.unwrap()
    }

    /// Runs SQL behind the store's back (to plant garbage, inspect columns).
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Like [`Harness::exec`], answering the database's refusal instead of
    /// panicking on it.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        let done = match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                let r = sqlx::raw_sql(sql).execute(&pool).await.map(drop);
                pool.close().await;
                r
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                let r = sqlx::raw_sql(sql).execute(&pool).await.map(drop);
                pool.close().await;
                r
            }
        };
        done.map_err(|e| e.to_string())
    }

    /// One nullable BIGINT column of one row.
    pub async fn scalar(&self, sql: &str) -> Option<i64> {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                let v = sqlx::query_scalar::<_, Option<i64>>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                v
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                let v = sqlx::query_scalar::<_, Option<i64>>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                v
            }
        }
    }
}

impl Harness {
    /// Another fresh database of the same backend.
    pub async fn fresh_like(other: &Harness) -> Option<Harness> {
        match other.backend {
            Backend::Sqlite => Some(Harness::sqlite().await),
            Backend::Postgres => Harness::postgres("fresh_like").await,
        }
    }
}

/// Generates, for each named `async fn(&Harness)` in the calling module, a
/// `sqlite::<name>` and a `postgres::<name>` test.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::Harness::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::Harness::postgres(concat!("postgres::", stringify!($name))).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// A just-requested host of `org` (or the platform's), not yet stored.
pub fn host(org: Option<OrgId>, at: Timestamp) -> Host {
    Host {
        id: HostId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        provider: "local".into(),
        region: "local".into(),
        state: HostState::Requested,
        address: None,
        provider_ref: serde_json::json!({}),
        hostname: None,
        agent_version: None,
        last_seen_at: None,
        connected_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// `n` anvil nodes (provisioning) of a new organization `acme`.
pub async fn anvil_nodes(store: &dyn Store, n: usize, at: Timestamp) -> Vec<hood_domain::NodeId> {
    use hood_domain::identity::Organization;
    use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
    use hood_domain::node::Node;
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "acme".into(),
        created_at: at,
    };
    store.create_org(&org).await.unwrap();
    let mut out = vec![];
    for i in 0..n {
        let node = Node {
            id: hood_domain::NodeId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org.id,
            name: format!("n{i}"),
            chain: "ethereum-anvil".into(),
            node_type: "dev".into(),
            provider: "local".into(),
            region: "local".into(),
            state: NodeState::Provisioning,
            sync_status: SyncStatus::Unknown,
            app_health: ApplicationHealth::Unknown,
            host_id: None,
            rpc_endpoint: None,
            head_height: None,
            binary_version: None,
            failure_reason: None,
            version: 0,
            created_at: at,
            updated_at: at,
        };
        store.create_node(&node).await.unwrap();
        out.push(node.id);
    }
    out
}
