//! Shared harness of the saga engine's integration tests: a migrated
//! database of each backend, an application context with a ledger of side
//! effects and crash injection, the test workflows, and the `both_backends!`
//! macro that runs one test body against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use hood_saga::{
    ChildSpec, Engine, Registry, RetryPolicy, StartWorkflow, Step, StepContext, StepError,
    StepOutcome, WorkerConfig, WorkerHandle, Workflow, WorkflowRecord,
};
use hood_store::{Backend, Store};
use hood_testkit::PgDatabase;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
}

/// A fresh, migrated database of one backend.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub backend: Backend,
    _guard: Guard,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = hood_testkit::sqlite_url(&dir);
        let store = hood_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
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
        store.migrate().await.unwrap();
        Some(Self {
            store,
            url,
            backend: Backend::Postgres,
            _guard: Guard::Postgres(db),
        })
    }

    /// A second, independent store (own pool) on the same database: what a
    /// restarted or another process would open.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        hood_store::connect(&self.url).await.unwrap()
    }

    /// Runs SQL behind the engine's back.
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

    /// Worker settings for tests: short leases and polls. On SQLite the
    /// embedded single worker (drops a dead predecessor's leases at start);
    /// on PostgreSQL a cluster worker that waits for them to expire.
    pub fn worker(&self, owner: &str) -> WorkerConfig {
        WorkerConfig::for_backend(self.backend)
            .owner(owner)
            .lease_ttl(Duration::from_millis(1000))
            .poll_interval(Duration::from_millis(100))
            .max_concurrent(8)
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests for each named
/// `async fn(&TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::common::TestDb::postgres(concat!("saga::", stringify!($name))).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

// -- application context --

/// Where a crash is injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashPoint {
    pub workflow: String,
    pub step: usize,
    pub undo: bool,
    /// Before the step's effect, or after it (but before the journal).
    pub after_effect: bool,
}

/// The services the test workflows use: a ledger of side effects (the
/// "outside world"), planned crashes and failures, and knobs.
#[derive(Default)]
pub struct App {
    /// Effects present in the world, by key (idempotent writes).
    pub effects: Mutex<BTreeMap<String, Value>>,
    /// Every execution of an action or undo, in order: `wf/step/kind`.
    pub executions: Mutex<Vec<String>>,
    /// Undos that removed an effect, in order.
    pub undone: Mutex<Vec<String>>,
    crash_plan: Mutex<Vec<CrashPoint>>,
    crashed_tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<CrashPoint>>>,
    pub crashed_rx: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<CrashPoint>>>,
    /// Failures still to inject per `wf/step` (retryable ones).
    pub flaky: Mutex<HashMap<String, u32>>,
    /// Undos of the `stuck` workflow fail while set.
    pub undo_broken: AtomicBool,
    /// Actions of the `blocking` workflow wait for this when set.
    pub gate: tokio::sync::Notify,
    pub block_first: AtomicBool,
    pub started: tokio::sync::Notify,
}

impl App {
    pub fn new() -> Arc<Self> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = Self::default();
        *app.crashed_tx.lock().unwrap() = Some(tx);
        *app.crashed_rx.try_lock().unwrap() = Some(rx);
        Arc::new(app)
    }

    pub fn plan_crashes(&self, points: Vec<CrashPoint>) {
        *self.crash_plan.lock().unwrap() = points;
    }

    /// Simulated process death: tells the test, then never returns (the
    /// test kills the worker, which drops this future mid-flight).
    async fn maybe_crash(&self, workflow: &str, step: usize, undo: bool, after_effect: bool) {
        let point = CrashPoint {
            workflow: workflow.into(),
            step,
            undo,
            after_effect,
        };
        let hit = {
            let mut plan = self.crash_plan.lock().unwrap();
            match plan.iter().position(|p| *p == point) {
                Some(i) => {
                    plan.remove(i);
                    true
                }
                None => false,
            }
        };
        if hit {
            if let Some(tx) = &*self.crashed_tx.lock().unwrap() {
                let _ = tx.send(point);
            }
            std::future::pending::<()>().await;
        }
    }

    /// Waits for the next injected crash.
    pub async fn next_crash(&self) -> CrashPoint {
        let mut rx = self.crashed_rx.lock().await;
        tokio::time::timeout(Duration::from_secs(30), rx.as_mut().unwrap().recv())
            .await
            .expect("crash point reached")
            .unwrap()
    }

    pub fn record(&self, key: String, value: Value) {
        self.effects.lock().unwrap().insert(key, value);
    }

    pub fn executed(&self, what: String) {
        self.executions.lock().unwrap().push(what);
    }

    pub fn effects_of(&self, wf: &str) -> BTreeMap<String, Value> {
        let prefix = format!("{wf}/");
        self.effects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_owned(), v.clone()))
            .collect()
    }

    pub fn executions_of(&self, wf: &str) -> Vec<String> {
        let prefix = format!("{wf}/");
        self.executions
            .lock()
            .unwrap()
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    pub fn undone_of(&self, wf: &str) -> Vec<String> {
        let prefix = format!("{wf}/");
        self.undone
            .lock()
            .unwrap()
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    /// Takes one planned retryable failure of `wf/step`, if any is left.
    fn flake(&self, key: &str) -> bool {
        let mut flaky = self.flaky.lock().unwrap();
        match flaky.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

// -- test workflows --

pub const LEDGER: (&str, i64) = ("ledger", 1);
pub const STEPS: usize = 5;

/// Small, fast policies so tests run in milliseconds.
pub const FAST: RetryPolicy = RetryPolicy::new(
    3,
    Duration::from_millis(100),
    2.0,
    Duration::from_millis(400),
);

/// Step `i` of the ledger workflow: records `wf/s{i}` in the world
/// (idempotent), may fail (input `fail_at`, permanent; `flaky` map,
/// retryable) and may crash before or after its effect. Its undo removes
/// the record (idempotent) with the same crash hooks.
fn ledger_step(i: usize) -> Step<App> {
    Step::new(format!("s{i}"), move |ctx: StepContext<App>| async move {
        let wf = ctx.workflow_id.clone();
        let app = Arc::clone(&ctx.app);
        app.executed(format!("{wf}/s{i}/action"));
        app.maybe_crash(&wf, i, false, false).await;
        if ctx.input()["fail_at"].as_u64() == Some(i as u64) {
            return Err(StepError::permanent("planned failure"));
        }
        if app.flake(&format!("{wf}/s{i}")) {
            return Err(StepError::retryable("transient trouble"));
        }
        app.record(
            format!("{wf}/s{i}"),
            json!({ "step": i, "input": ctx.input() }),
        );
        app.maybe_crash(&wf, i, false, true).await;
        Ok(
            json!({ "step": i, "previous": ctx.output_of(&format!("s{}", i.wrapping_sub(1))) })
                .into(),
        )
    })
    .undo(move |ctx: StepContext<App>| async move {
        let wf = ctx.workflow_id.clone();
        let app = Arc::clone(&ctx.app);
        app.executed(format!("{wf}/s{i}/undo"));
        app.maybe_crash(&wf, i, true, false).await;
        assert_eq!(
            ctx.output.as_ref().unwrap()["step"],
            json!(i),
            "undo sees its action's output"
        );
        let removed = app
            .effects
            .lock()
            .unwrap()
            .remove(&format!("{wf}/s{i}"))
            .is_some();
        if removed {
            app.undone.lock().unwrap().push(format!("{wf}/s{i}"));
        }
        app.maybe_crash(&wf, i, true, true).await;
        Ok(())
    })
    .retry(FAST)
}

fn ledger() -> Workflow<App> {
    (0..STEPS).fold(Workflow::new(LEDGER.0, LEDGER.1), |w, i| {
        w.step(ledger_step(i))
    })
}

/// Step 0 has an undo that fails while `undo_broken`; step 1 fails for good.
fn stuck() -> Workflow<App> {
    Workflow::new("stuck", 1)
        .step(
            Step::new("create", |ctx: StepContext<App>| async move {
                ctx.app
                    .record(format!("{}/create", ctx.workflow_id), json!(true));
                Ok(json!("created").into())
            })
            .undo(|ctx: StepContext<App>| async move {
                ctx.app.executed(format!("{}/create/undo", ctx.workflow_id));
                if ctx.app.undo_broken.load(Ordering::SeqCst) {
                    return Err(StepError::retryable("provider API down"));
                }
                ctx.app
                    .effects
                    .lock()
                    .unwrap()
                    .remove(&format!("{}/create", ctx.workflow_id));
                Ok(())
            })
            .retry(RetryPolicy::new(
                2,
                Duration::from_millis(50),
                2.0,
                Duration::from_millis(50),
            )),
        )
        .step(Step::new("explode", |_ctx: StepContext<App>| async move {
            Err(StepError::permanent("exploded"))
        }))
}

/// Step 1 sleeps durably for `input.sleep_ms` (from its first run).
fn sleeper() -> Workflow<App> {
    Workflow::new("sleeper", 1)
        .step(Step::new("before", |ctx: StepContext<App>| async move {
            ctx.app.executed(format!("{}/before", ctx.workflow_id));
            Ok(json!(hood_clock::now()).into())
        }))
        .step(Step::new("nap", |ctx: StepContext<App>| async move {
            ctx.app.executed(format!("{}/nap", ctx.workflow_id));
            let ms = ctx.input()["sleep_ms"].as_u64().unwrap_or(0);
            if let Some(sleeping) = ctx.sleep_for(Duration::from_millis(ms)) {
                return Ok(sleeping);
            }
            Ok(json!({ "woke_at": hood_clock::now(), "timer": ctx.timer }).into())
        }))
        .step(Step::new("after", |ctx: StepContext<App>| async move {
            ctx.app.executed(format!("{}/after", ctx.workflow_id));
            Ok(json!(hood_clock::now()).into())
        }))
}

/// Step 1 waits for the signal named by `input.signal` and returns its
/// payload; steps 0 and 2 record effects (step 0 has an undo).
fn gated() -> Workflow<App> {
    Workflow::new("gated", 1)
        .step(
            Step::new("prepare", |ctx: StepContext<App>| async move {
                ctx.app
                    .record(format!("{}/prepare", ctx.workflow_id), json!(true));
                Ok(json!("prepared").into())
            })
            .undo(|ctx: StepContext<App>| async move {
                ctx.app
                    .effects
                    .lock()
                    .unwrap()
                    .remove(&format!("{}/prepare", ctx.workflow_id));
                ctx.app
                    .undone
                    .lock()
                    .unwrap()
                    .push(format!("{}/prepare", ctx.workflow_id));
                Ok(())
            }),
        )
        .step(Step::new("gate", |ctx: StepContext<App>| async move {
            ctx.app.executed(format!("{}/gate", ctx.workflow_id));
            let name = ctx.input()["signal"]
                .as_str()
                .unwrap_or("approve")
                .to_owned();
            match ctx.take_signal(&name) {
                Some(signal) => Ok(signal.payload.into()),
                None => Ok(StepOutcome::wait_for_signal(name)),
            }
        }))
        .step(Step::new("go", |ctx: StepContext<App>| async move {
            ctx.app
                .record(format!("{}/go", ctx.workflow_id), json!(true));
            Ok(json!({ "approved_with": ctx.output_of("gate") }).into())
        }))
}

/// Starts (idempotently) one child and waits for it.
fn parent() -> Workflow<App> {
    Workflow::new("parent", 1)
        .step(Step::new("spawn", |ctx: StepContext<App>| async move {
            ctx.app.executed(format!("{}/spawn", ctx.workflow_id));
            let child = ChildSpec::new(
                format!("{}-child", ctx.workflow_id),
                "child",
                1,
                json!({ "fail": ctx.input()["child_fails"] }),
            );
            ctx.await_child(child).await
        }))
        .step(Step::new("finish", |ctx: StepContext<App>| async move {
            Ok(json!({ "child_said": ctx.output_of("spawn") }).into())
        }))
}

fn child() -> Workflow<App> {
    Workflow::new("child", 1).step(Step::new("work", |ctx: StepContext<App>| async move {
        if let Some(sleeping) = ctx.sleep_for(Duration::from_millis(300)) {
            return Ok(sleeping);
        }
        if ctx.input()["fail"] == json!(true) {
            return Err(StepError::permanent("child broke"));
        }
        Ok(json!({ "child": ctx.workflow_id }).into())
    }))
}

/// Three steps with small random delays (fencing test); the first run of
/// step 0 can be made to block until `gate` is notified.
fn blocking() -> Workflow<App> {
    let mut w = Workflow::new("blocking", 1);
    for i in 0..3 {
        w = w.step(Step::new(
            format!("b{i}"),
            move |ctx: StepContext<App>| async move {
                ctx.app.executed(format!("{}/b{i}", ctx.workflow_id));
                if i == 0 && ctx.app.block_first.swap(false, Ordering::SeqCst) {
                    ctx.app.started.notify_one();
                    ctx.app.gate.notified().await;
                }
                let jitter = (ctx.workflow_id.len() as u64 * 7 + i as u64 * 3) % 15;
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                ctx.app
                    .record(format!("{}/b{i}", ctx.workflow_id), json!(i));
                Ok(json!(i).into())
            },
        ));
    }
    w
}

/// Panics on its first attempt (a bug triggered by something transient).
fn panicky() -> Workflow<App> {
    Workflow::new("panicky", 1).step(
        Step::new("oops", |ctx: StepContext<App>| async move {
            if ctx.attempt == 1 {
                panic!("index out of bounds");
            }
            Ok(json!({ "attempt": ctx.attempt }).into())
        })
        .retry(FAST),
    )
}

pub fn registry() -> Registry<App> {
    [
        ledger(),
        stuck(),
        sleeper(),
        gated(),
        parent(),
        child(),
        blocking(),
        panicky(),
    ]
    .into_iter()
    .try_fold(Registry::new(), Registry::with)
    .unwrap()
}

/// An engine as a (re)started process would build it: its own pool.
pub async fn engine(db: &TestDb, app: &Arc<App>) -> Engine<App> {
    Engine::new(db.reopen().await, registry(), Arc::clone(app))
}

pub async fn start(engine: &Engine<App>, id: &str, workflow: (&str, i64), input: Value) {
    engine
        .start(StartWorkflow::new(id, workflow, input).unwrap())
        .await
        .unwrap();
}

pub async fn wait(engine: &Engine<App>, id: &str) -> WorkflowRecord {
    engine.wait(id, Duration::from_secs(60)).await.unwrap()
}

/// Runs `id` from start with the given crashes: each one kills the worker
/// (no journaling after it), and a fresh engine and worker take over.
pub async fn run_with_crashes(
    db: &TestDb,
    app: &Arc<App>,
    id: &str,
    input: Value,
    crashes: Vec<CrashPoint>,
) -> WorkflowRecord {
    let n = crashes.len();
    app.plan_crashes(crashes);
    let mut eng = engine(db, app).await;
    let mut worker: WorkerHandle = eng.spawn_worker(db.worker("process-0"));
    start(&eng, id, LEDGER, input).await;
    for k in 1..=n {
        let point = app.next_crash().await;
        assert_eq!(point.workflow, id);
        worker.kill().await;
        eng = engine(db, app).await;
        worker = eng.spawn_worker(db.worker(&format!("process-{k}")));
    }
    let wf = wait(&eng, id).await;
    worker.shutdown().await;
    wf
}
