//! What benchmarks need from the database besides the store's own methods,
//! so that a benchmark binary runs no SQL of its own:
//!
//! * [`bare_insert_rate`]: the anchor of `hood bench ledger`, the bare cost
//!   of inserting rows as wide as a ledger transfer into a scratch table of
//!   the same database, one transaction per call the ledger would make;
//! * [`ScratchDatabase`]: a throwaway database beside the one a URL names,
//!   for measurements that each need a fresh database (the ledger with and
//!   without its Merkle log, see [`crate::ConnectOptions::ledger_log`]).
//!
//! Nothing here is used outside benchmarks.

use crate::db::{query, Backend, Pool};
use crate::model::ledger::{TRANSFER_COLUMNS, TRANSFER_WIDTH};
use crate::{SqlStore, StoreError, StoreResult};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The scratch table [`bare_insert_rate`] fills and drops: the columns and
/// types of `ledger_transfers`, with its primary key but none of its other
/// constraints or indexes.
const SCRATCH_TABLE: &str = "hood_bench_scratch_rows";

/// How long inserting `rows` rows took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsertRun {
    pub rows: usize,
    /// Rows per transaction (1: one single-row `INSERT` per transaction).
    pub batch: usize,
    pub elapsed: Duration,
}

impl InsertRun {
    /// Rows per second.
    pub fn per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The store's bare insert rate, the anchor for ledger writes: inserts
/// `rows` rows of a ledger transfer's width (16 columns, its types, a text
/// UUID primary key in ascending order) into a scratch table of the same
/// database, `batch` rows per transaction as one multi-row `INSERT` (split
/// only where the dialect's bind limit demands), so `batch = 1` is one
/// single-row transaction per row. Only the inserts are timed; the table is
/// created before and dropped after. Writers take the same write
/// transactions as the ledger (`BEGIN IMMEDIATE` on SQLite).
pub async fn bare_insert_rate(
    store: &SqlStore,
    rows: usize,
    batch: usize,
) -> StoreResult<InsertRun> {
    let pool = store.pool();
    let backend = pool.backend();
    let batch = batch.max(1);
    let drop_sql = format!("DROP TABLE IF EXISTS {SCRATCH_TABLE}");
    query(drop_sql.as_str()).execute(pool).await?;
    query(format!(
        "CREATE TABLE {SCRATCH_TABLE} (\
           id TEXT NOT NULL PRIMARY KEY, debit_account_id TEXT NOT NULL, \
           credit_account_id TEXT NOT NULL, amount BIGINT NOT NULL, pending_id TEXT, \
           user_data_128 TEXT NOT NULL, user_data_64 BIGINT NOT NULL, \
           user_data_32 BIGINT NOT NULL, timeout BIGINT NOT NULL, ledger BIGINT NOT NULL, \
           code BIGINT NOT NULL, flags BIGINT NOT NULL, timestamp BIGINT NOT NULL, \
           leaf_index BIGINT NOT NULL, pending_status TEXT, expires_at BIGINT)"
    ))
    .execute(pool)
    .await?;
    let measured = insert_rows(pool, backend, rows, batch).await;
    // Drop the table whether or not the inserts worked.
    let dropped = query(drop_sql.as_str()).execute(pool).await;
    let elapsed = measured?;
    dropped?;
    Ok(InsertRun {
        rows,
        batch,
        elapsed,
    })
}

async fn insert_rows(
    pool: &Pool,
    backend: Backend,
    rows: usize,
    batch: usize,
) -> StoreResult<Duration> {
    // The same values a ledger transfer row holds: ids as UUID text, a
    // 32-hex-digit user_data_128, integers.
    let base = Uuid::now_v7().as_u128() & !0xffff_ffff_u128;
    let debit = Uuid::now_v7().to_string();
    let credit = Uuid::now_v7().to_string();
    let user_data_128 = format!("{:032x}", 0_u128);
    let per_statement = backend.rows_per_statement(TRANSFER_WIDTH).min(batch);
    let started = Instant::now();
    let mut next = 0usize;
    while next < rows {
        let in_tx = batch.min(rows - next);
        let mut tx = pool.begin_write().await?;
        let mut done = 0usize;
        while done < in_tx {
            let n = per_statement.min(in_tx - done);
            let sql = format!(
                "INSERT INTO {SCRATCH_TABLE} ({TRANSFER_COLUMNS}) VALUES {}",
                backend.values_list(n, TRANSFER_WIDTH)
            );
            let mut q = query(sql).persistent(n == 1);
            for i in next + done..next + done + n {
                let index = i64::try_from(i)
                    .map_err(|_| StoreError::Corrupt(format!("row {i} out of range")))?;
                q = q
                    .bind(Uuid::from_u128(base | i as u128).to_string())
                    .bind(debit.as_str())
                    .bind(credit.as_str())
                    .bind(1 + index % 1_000)
                    .bind(None::<String>)
                    .bind(user_data_128.as_str())
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(1_i64)
                    .bind(1_i64)
                    .bind(0_i64)
                    .bind(1_700_000_000_000_000_000 + index)
                    .bind(index)
                    .bind(None::<String>)
                    .bind(None::<i64>);
            }
            q.execute(&mut tx).await?;
            done += n;
        }
        tx.commit().await?;
        next += in_tx;
    }
    Ok(started.elapsed())
}

/// A throwaway database beside the one a URL names: SQLite, a new file in
/// the same directory (`hood-bench-<uuid>.db`; a new in-memory database for
/// `:memory:`); PostgreSQL, a new database `hood_bench_<uuid>` on the same
/// server (the URL's user must be allowed to create databases).
/// [`Self::remove`] deletes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres { server_url: String, name: String },
}

impl ScratchDatabase {
    /// Creates the database (empty, not migrated).
    pub async fn create(beside: &str) -> StoreResult<Self> {
        let tag = Uuid::new_v4().simple().to_string();
        if let Some(rest) = beside.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path.contains(":memory:") || beside.contains("mode=memory") {
                return Ok(Self {
                    url: "sqlite::memory:".into(),
                    place: Place::SqliteMemory,
                });
            }
            let dir = PathBuf::from(path)
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            let file = dir.join(format!("hood-bench-{tag}.db"));
            return Ok(Self {
                url: format!("sqlite://{}", file.display()),
                place: Place::SqliteFile(file),
            });
        }
        let name = format!("hood_bench_{tag}");
        let url = with_database(beside, &name).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Configuration(
                format!(
                    "cannot name a scratch database beside {}",
                    crate::redact_url(beside)
                )
                .into(),
            ))
        })?;
        let admin = Pool::open(beside).await?;
        if admin.backend() != Backend::Postgres {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "unsupported database URL scheme (expected sqlite:// or postgres://)".into(),
            )));
        }
        // The name is ours (hex digits), so it needs no quoting.
        query(format!("CREATE DATABASE {name}"))
            .persistent(false)
            .execute(&admin)
            .await?;
        Ok(Self {
            url,
            place: Place::Postgres {
                server_url: beside.to_owned(),
                name,
            },
        })
    }

    /// The scratch database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Deletes the database. Close every store opened on it first
    /// (PostgreSQL drops it even with connections left open).
    pub async fn remove(self) -> StoreResult<()> {
        match self.place {
            Place::SqliteMemory => Ok(()),
            Place::SqliteFile(file) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = file.clone().into_os_string();
                    path.push(suffix);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(StoreError::Database(sqlx::Error::Io(e)));
                        }
                    }
                }
                Ok(())
            }
            Place::Postgres { server_url, name } => {
                let admin = Pool::open(&server_url).await?;
                query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .persistent(false)
                    .execute(&admin)
                    .await?;
                Ok(())
            }
        }
    }
}

/// `url` with its database (path) replaced by `db`; `None` when the URL has
/// no `scheme://` part.
fn with_database(url: &str, db: &str) -> Option<String> {
    let (base, params) = match url.split_once('?') {
        Some((b, p)) => (b, Some(p)),
        None => (url, None),
    };
    let authority = base.find("://")? + 3;
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{db}", &base[..path]);
    if let Some(p) = params {
        out.push('?');
        out.push_str(p);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_urls_keep_server_and_parameters() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/bench?sslmode=disable", "x").as_deref(),
            Some("postgres://u:p@h:5432/x?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "x").as_deref(),
            Some("postgres://h/x")
        );
        assert_eq!(with_database("nonsense", "x"), None);
    }

    /// With the benchmark-only switch off, ledger writes record the same
    /// balances and leaf indexes but no leaf, and a default store on
    /// another database keeps its log.
    #[tokio::test]
    async fn the_log_off_switch_skips_leaves_but_not_records() {
        use crate::ledger::LedgerStore;
        use hood_domain::ledger::CreateTransferResult;
        use hood_testkit::ledger::{account, ledgers, tid, transfer, USD};

        async fn write(store: &SqlStore) {
            crate::Store::migrate(store).await.expect("migrate");
            for l in ledgers() {
                store
                    .ensure_ledger(&l, hood_clock::now())
                    .await
                    .expect("ledger");
            }
            let accounts = [account(1, USD, 0), account(2, USD, 0)];
            let r = store
                .create_accounts(&accounts, 10)
                .await
                .expect("accounts");
            assert!(r.iter().all(|r| r.is_ok()));
            let r = store
                .create_transfers(&[transfer(1, 1, 2, 5), transfer(2, 2, 1, 2)], 20)
                .await
                .expect("transfers");
            assert_eq!(r, [CreateTransferResult::Ok, CreateTransferResult::Ok]);
            let a = store
                .get_account(hood_testkit::ledger::aid(1))
                .await
                .expect("get");
            assert_eq!(a.map(|a| (a.debits_posted, a.credits_posted)), Some((5, 2)));
            let leaf = store
                .leaf_index(crate::ledger::LeafKind::Transfer, &tid(2).to_string())
                .await
                .expect("leaf index");
            assert_eq!(leaf, Some(3));
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let off_url = format!("sqlite://{}/off.db", dir.path().display());
        let off = crate::connect_with(&off_url, crate::ConnectOptions { ledger_log: false })
            .await
            .expect("open");
        write(&off).await;
        assert!(off.log_entries(0, 10).await.expect("entries").is_empty());

        let on_url = format!("sqlite://{}/on.db", dir.path().display());
        let on = crate::connect_with(&on_url, crate::ConnectOptions::default())
            .await
            .expect("open");
        write(&on).await;
        assert_eq!(on.log_entries(0, 10).await.expect("entries").len(), 4);
        assert_eq!(on.ledger_head().await.expect("head").tree_size, 4);
    }

    #[tokio::test]
    async fn bare_inserts_fill_and_drop_the_scratch_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/b.db", dir.path().display());
        let store = crate::connect(&url).await.expect("open");
        for batch in [1, 7] {
            let run = bare_insert_rate(&store, 20, batch).await.expect("inserts");
            assert_eq!((run.rows, run.batch), (20, batch));
            assert!(run.per_sec() > 0.0);
        }
        let scratch = ScratchDatabase::create(&url).await.expect("scratch");
        assert!(scratch.url().starts_with("sqlite://"));
        assert_ne!(scratch.url(), url);
        let other = crate::connect(scratch.url()).await.expect("open scratch");
        drop(other);
        scratch.remove().await.expect("remove");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("hood-bench-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
