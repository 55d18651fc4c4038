//! Shared test fixtures for Hood's crates.
//!
//! * [`PgDatabase`]: a throwaway PostgreSQL database, created on the server
//!   named by `HOOD_TEST_POSTGRES_URL` and dropped when the fixture drops.
//!   `.ci/run` always sets the variable; elsewhere a test that needs it
//!   prints a loud SKIPPED line and returns.
//! * [`sqlite_url`]: a fresh SQLite database file in a temporary directory.
//! * [`nats_url`], [`redis_url`], [`anvil_bin`], [`schemathesis_bin`]: the
//!   NATS server, the Redis server, the anvil binary and the schemathesis
//!   CLI the environment names, with the same loud skip (and CI failure)
//!   when unset.
//! * [`NatsStream`]: a JetStream stream and subject prefix of one test.
//! * [`smtp::SmtpSink`]: a real SMTP server (aiosmtpd) recording what it
//!   receives; [`smtp::smtpd_python`] finds its interpreter, with the same
//!   loud skip.
//! * [`ledger`]: ledger accounts and transfers named by small numbers.
//! * [`podman::Podman`]: a real container engine (Podman's Docker-compatible
//!   API service) per test, with the root filesystem `scripts/test` builds.

pub mod ledger;
pub mod oidc;
pub mod podman;
pub mod s3;
pub mod smtp;

use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};

/// The value of `var` if set, else a loud skip notice (`what` names the
/// missing service) and `None`. Under CI (`CI` set) a missing variable is a
/// failure, never a silent skip.
fn required_env(var: &str, test: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{var} must be set in CI (test {test})"
            );
            // Straight to the stderr handle: libtest captures `eprintln!` of
            // passing tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {var} is not set, {what} ***"
            );
            None
        }
    }
}

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "HOOD_TEST_POSTGRES_URL";

/// Reads `HOOD_TEST_POSTGRES_URL`, or prints a loud skip notice. Under CI
/// (`CI` set) a missing variable is a failure, never a silent skip.
pub fn postgres_server_url(test: &str) -> Option<String> {
    required_env(POSTGRES_ENV, test, "no PostgreSQL to test against")
}

/// The environment variable naming the real `anvil` binary for tests.
pub const ANVIL_ENV: &str = "HOOD_TEST_ANVIL_BIN";

/// The real `anvil` binary (installed from npm by `scripts/test`), or a loud
/// skip notice when absent. Under CI a missing binary is a failure.
pub fn anvil_bin(test: &str) -> Option<PathBuf> {
    required_file(ANVIL_ENV, test)
}

/// The environment variable naming the anvil binary the rollout tests
/// upgrade to (1.7.1; `scripts/test` installs it beside 1.5.1).
pub const ANVIL_NEXT_ENV: &str = "HOOD_TEST_ANVIL_NEXT_BIN";

/// The newer anvil, or a loud skip notice when absent (a failure under CI).
pub fn anvil_next_bin(test: &str) -> Option<PathBuf> {
    required_file(ANVIL_NEXT_ENV, test)
}

/// The environment variable naming the schemathesis CLI (`st`) for tests.
pub const SCHEMATHESIS_ENV: &str = "HOOD_TEST_SCHEMATHESIS_BIN";

/// The schemathesis CLI (installed from PyPI into a cached virtualenv by
/// `scripts/test`), or a loud skip notice when absent. Under CI a missing
/// CLI is a failure.
pub fn schemathesis_bin(test: &str) -> Option<PathBuf> {
    required_file(SCHEMATHESIS_ENV, test)
}

/// The environment variable naming a Python interpreter with PyNaCl.
pub const PYNACL_ENV: &str = "HOOD_TEST_PYNACL_PYTHON";

/// A Python with PyNaCl (libsodium's Ed25519; installed from PyPI into a
/// cached virtualenv by `scripts/test`): a signature checker no one here
/// wrote. A loud skip when absent; a failure under CI.
pub fn pynacl_python(test: &str) -> Option<PathBuf> {
    required_file(PYNACL_ENV, test)
}

/// The environment variable naming a Python interpreter with Stripe's
/// library.
pub const STRIPE_PYTHON_ENV: &str = "HOOD_TEST_STRIPE_PYTHON";

/// A Python with Stripe's own `stripe` package (installed from PyPI into a
/// cached virtualenv by `scripts/test`): webhook signatures no one here
/// wrote. A loud skip when absent; a failure under CI.
pub fn stripe_python(test: &str) -> Option<PathBuf> {
    required_file(STRIPE_PYTHON_ENV, test)
}

/// The environment variable naming a virtualenv with the `aws` CLI and
/// boto3 (both from PyPI, installed by `scripts/test`).
pub const AWSCLI_DIR_ENV: &str = "HOOD_TEST_AWSCLI_DIR";

/// The virtualenv holding `bin/aws` and a `bin/python3` with boto3:
/// S3 clients no one here wrote. A loud skip when absent; a failure under
/// CI.
pub fn awscli_dir(test: &str) -> Option<PathBuf> {
    let python = required_file_in(AWSCLI_DIR_ENV, "bin/python3", test)?;
    python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// Like [`required_file`] for a file inside the directory `var` names.
fn required_file_in(var: &str, file: &str, test: &str) -> Option<PathBuf> {
    let dir = required_env(var, test, "run the tests through scripts/test")?;
    let path = Path::new(&dir).join(file);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{var} must name a directory holding {file} in CI (test {test})"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {var} holds no {file}; run the tests through scripts/test ***"
    );
    None
}

/// The environment variable naming Debian's Chromium for browser tests.
pub const CHROMIUM_ENV: &str = "HOOD_TEST_CHROMIUM_BIN";

/// Debian's `chromium` (installed by `.ci/run`, or by `scripts/test` when
/// it may), driven by Playwright in the console's browser tests. A loud
/// skip when absent; a failure under CI.
pub fn chromium_bin(test: &str) -> Option<PathBuf> {
    required_file(CHROMIUM_ENV, test)
}

/// The environment variable naming the browser tests' directory, with
/// Playwright installed from its lockfile (`tests/browser`).
pub const BROWSER_TESTS_ENV: &str = "HOOD_TEST_BROWSER_DIR";

/// The browser tests' directory with `node_modules/playwright-core`
/// installed (`npm ci` by `scripts/test`). A loud skip when absent; a
/// failure under CI.
pub fn browser_tests_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(required_env(
        BROWSER_TESTS_ENV,
        test,
        "run the tests through scripts/test",
    )?);
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} has no node_modules/playwright-core in CI (test {test})",
        dir.display()
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {} has no node_modules/playwright-core (run scripts/test) ***",
        dir.display()
    );
    None
}

/// The file `var` names, with the loud-skip rule of [`required_env`] for an
/// unset variable and for one naming no file.
fn required_file(var: &str, test: &str) -> Option<PathBuf> {
    let path = required_env(var, test, "run the tests through scripts/test")?;
    if std::path::Path::new(&path).is_file() {
        return Some(PathBuf::from(path));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{var} must name a file in CI (test {test})"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {var} names no file; run the tests through scripts/test ***"
    );
    None
}

/// The environment variable naming the NATS server (with JetStream) for
/// tests, e.g. `nats://127.0.0.1:4222`.
pub const NATS_ENV: &str = "HOOD_TEST_NATS_URL";

/// Reads `HOOD_TEST_NATS_URL`, or prints a loud skip notice. Under CI (`CI`
/// set) a missing variable is a failure, never a silent skip.
pub fn nats_url(test: &str) -> Option<String> {
    required_env(NATS_ENV, test, "no NATS to test against")
}

/// The environment variable naming the Redis server for tests, e.g.
/// `redis://127.0.0.1:6379`.
pub const REDIS_ENV: &str = "HOOD_TEST_REDIS_URL";

/// Reads `HOOD_TEST_REDIS_URL`, or prints a loud skip notice (a failure
/// under CI).
pub fn redis_url(test: &str) -> Option<String> {
    required_env(REDIS_ENV, test, "no Redis to test against")
}

/// A JetStream stream and subject prefix of one test, so tests sharing a
/// NATS server never see each other's events; the stream is deleted when
/// this value drops (even when the test panicked).
pub struct NatsStream {
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl NatsStream {
    /// A fresh name pair, or `None` (after a loud skip) without NATS.
    pub fn unique(test: &str) -> Option<Self> {
        let url = nats_url(test)?;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Some(Self {
            url,
            stream: format!("HOOD_TEST_{tag}"),
            prefix: format!("hoodtest_{tag}"),
        })
    }

    /// The environment a `hood` process needs to use this stream.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOOD_NATS_URL", self.url.clone()),
            ("HOOD_NATS_STREAM", self.stream.clone()),
            ("HOOD_NATS_SUBJECT_PREFIX", self.prefix.clone()),
        ]
    }
}

impl Drop for NatsStream {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        // A private runtime: this may run while the test's runtime unwinds.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(url.as_str()).await {
                    let js = async_nats::jetstream::new(client);
                    // A stream never created (the test failed early) is fine.
                    let _ = js.delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL database that exists for the life of this value.
pub struct PgDatabase {
    server_url: String,
    name: String,
    /// URL of the throwaway database itself.
    pub url: String,
}

impl PgDatabase {
    /// Creates `hood_test_<random>` on the server, or `None` (after a loud
    /// skip notice) when no server is configured.
    pub async fn create(test: &str) -> Option<Self> {
        let server_url = postgres_server_url(test)?;
        let name = format!("hood_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_ENV}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let url = with_database(&server_url, &name);
        Some(Self {
            server_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee; use a private thread and
        // runtime so this works from both sync and async tests.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Replaces the database path of a PostgreSQL URL.
pub fn with_database(server_url: &str, db: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut url = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A fresh SQLite database URL inside `dir`.
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    let path: PathBuf = dir.path().join("hood.db");
    format!("sqlite://{}", path.display())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database_in_url() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://h:5432?sslmode=disable", "x"),
            "postgres://h:5432/x?sslmode=disable"
        );
    }
}
