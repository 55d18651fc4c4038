//! How a worker runs: lease owner and length, polling, concurrency.

use hood_store::Backend;
use std::time::Duration;

/// How a worker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Lease owner id; unique per worker (process restarts get a new one).
    pub owner: String,
    /// Lease length; renewed every third of it while a run is held. A
    /// worker that stops renewing (crash, partition) loses its runs after
    /// this long.
    pub lease_ttl: Duration,
    /// Fallback poll for work started by other processes (in-process work
    /// wakes the worker at once).
    pub poll_interval: Duration,
    /// Runs driven at the same time.
    pub max_concurrent: usize,
    /// Drop every lease at start: only for the sole worker of a database
    /// (embedded SQLite), whose leases at start belong to a dead process.
    pub exclusive: bool,
}

impl WorkerConfig {
    /// A cluster worker: leases, a random owner id, 1 s poll.
    pub fn cluster() -> Self {
        Self {
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            max_concurrent: 16,
            exclusive: false,
        }
    }

    /// The single in-process worker of embedded mode: resumes runs left
    /// leased by a previous process at once instead of after lease expiry.
    pub fn embedded() -> Self {
        Self {
            exclusive: true,
            ..Self::cluster()
        }
    }

    /// [`embedded`](Self::embedded) on SQLite, [`cluster`](Self::cluster)
    /// on PostgreSQL.
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::embedded(),
            Backend::Postgres => Self::cluster(),
        }
    }

    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::cluster()
    }
}
