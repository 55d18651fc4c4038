//! Background observation of a host's workloads: the sync probe and the
//! chain profile's collectors, sampled on their own schedules.
//!
//! Heartbeats must stay cheap and on time whatever the nodes do, so
//! sampling never happens on the heartbeat path: one tokio task per
//! workload runs every sampler of that workload concurrently (as futures of
//! that one task, so aborting it stops them all with nothing left behind)
//! and writes into a shared [`WorkloadObservation`] that the heartbeat only
//! copies.
//!
//! Endpoints are always dialled on loopback at the workload's allocated
//! ports. Errors are recorded in the sample, never raised: transport
//! problems as short text, JSON-RPC error objects as the JSON text
//! `{"code":…,"message":…}` (the error's `data` is dropped: nodes put
//! arbitrary detail there). Cookie files are read at each call and their
//! contents never appear in a sample or a log line.

use futures::future::BoxFuture;
use futures::FutureExt as _;
use hood_domain::host_metrics::{cpu_share, HostCounters};
use hood_domain::workload::{
    CollectorPlan, CollectorSource, Sample, SyncProbe, SyncSample, WorkloadObservation,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Default period of the sync probe.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Longest a sync probe round may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body a sample keeps; the observation travels in every
/// heartbeat and is stored as is.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything the samplers need to know about one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Workload id (the node id).
    pub workload_id: String,
    /// Runtime ids of the workload's processes (`{node}-{process}`): the
    /// heartbeat reports the observation on each of them.
    pub process_ids: Vec<String>,
    /// The sync probe, if the plan has one.
    pub sync: Option<SyncProbe>,
    /// The chain's collectors.
    pub collectors: Vec<CollectorPlan>,
    /// Allocated ports by name.
    pub ports: BTreeMap<String, u16>,
    /// Node directory: the `system` collector measures its filesystem, and
    /// cookie files must lie inside it.
    pub node_dir: PathBuf,
    /// Template variables for cookie file paths.
    pub vars: BTreeMap<String, String>,
    /// The host address the workload's ports listen on.
    pub address: std::net::IpAddr,
}

impl Target {
    fn samples_anything(&self) -> bool {
        self.sync.is_some() || !self.collectors.is_empty()
    }
}

struct Watch {
    target: Target,
    latest: Arc<Mutex<WorkloadObservation>>,
    /// `None` for workloads with nothing to sample (still tracked, so the
    /// heartbeat knows they are accounted for).
    task: Option<JoinHandle<()>>,
}

/// Owns the sampling tasks of the host's workloads.
pub struct Observer {
    http: reqwest::Client,
    sync_every: Duration,
    watches: Mutex<BTreeMap<String, Watch>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("sync_every", &self.sync_every)
            .field("watched", &self.watched())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Observer {
    /// An observer that samples with `http` (per-request timeouts override
    /// the client's).
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            sync_every: DEFAULT_SYNC_INTERVAL,
            watches: Mutex::new(BTreeMap::new()),
        }
    }

    /// Period of the sync probe (default 5 s). Applies to workloads watched
    /// afterwards.
    pub fn set_sync_interval(&mut self, every: Duration) {
        self.sync_every = every.max(Duration::from_millis(10));
    }

    /// Starts sampling a workload. The same target again keeps the running
    /// task and its samples (a redelivered `start_workload`); a changed one
    /// replaces it. Must run inside a tokio runtime.
    pub async fn watch(&self, target: Target) {
        let old = {
            let mut watches = lock(&self.watches);
            if let Some(w) = watches.get(&target.workload_id) {
                let alive = w.task.as_ref().is_some_and(|t| !t.is_finished());
                if w.target == target && (alive || !target.samples_anything()) {
                    return;
                }
            }
            let latest = Arc::new(Mutex::new(WorkloadObservation::default()));
            let task = target.samples_anything().then(|| {
                tokio::spawn(run(
                    target.clone(),
                    self.http.clone(),
                    self.sync_every,
                    latest.clone(),
                ))
            });
            tracing::debug!(
                workload = %target.workload_id,
                collectors = target.collectors.len(),
                sync = target.sync.is_some(),
                "observing workload"
            );
            watches.insert(
                target.workload_id.clone(),
                Watch {
                    target,
                    latest,
                    task,
                },
            )
        };
        if let Some(task) = old.and_then(|w| w.task) {
            stop_task(task).await;
        }
    }

    /// Stops sampling a workload and forgets its samples; returns once its
    /// task (and every sampler in it) is gone.
    pub async fn unwatch(&self, workload_id: &str) {
        let old = lock(&self.watches).remove(workload_id);
        if let Some(task) = old.and_then(|w| w.task) {
            stop_task(task).await;
            tracing::debug!(workload = %workload_id, "stopped observing workload");
        }
    }

    /// Stops every sampling task.
    pub async fn shutdown(&self) {
        let all = std::mem::take(&mut *lock(&self.watches));
        for task in all.into_values().filter_map(|w| w.task) {
            stop_task(task).await;
        }
    }

    /// Workload ids being tracked.
    pub fn watched(&self) -> Vec<String> {
        lock(&self.watches).keys().cloned().collect()
    }

    /// Sampling tasks still running (tests check that none leak).
    pub fn running_tasks(&self) -> usize {
        lock(&self.watches)
            .values()
            .filter(|w| w.task.as_ref().is_some_and(|t| !t.is_finished()))
            .count()
    }

    /// The workload a runtime process id belongs to, when it is tracked.
    pub fn workload_of(&self, process_id: &str) -> Option<String> {
        lock(&self.watches)
            .values()
            .find(|w| w.target.process_ids.iter().any(|p| p == process_id))
            .map(|w| w.target.workload_id.clone())
    }

    /// The latest observation of a workload; `None` when it is not tracked
    /// or has nothing to sample.
    pub fn observation(&self, workload_id: &str) -> Option<WorkloadObservation> {
        let watches = lock(&self.watches);
        let w = watches.get(workload_id)?;
        w.task.as_ref()?;
        let snapshot = lock(&w.latest).clone();
        Some(snapshot)
    }
}

impl Observer {
    /// Samples every collector and the sync probe of a watched workload
    /// once, now, concurrently; records the samples as the latest and
    /// returns them. `None` when the workload is not watched. What an
    /// upgrade's checks read: the background schedule may be a minute
    /// behind a process that just started.
    pub async fn sample_now(&self, workload_id: &str) -> Option<WorkloadObservation> {
        let (target, latest) = {
            let watches = lock(&self.watches);
            let w = watches.get(workload_id)?;
            (w.target.clone(), w.latest.clone())
        };
        let at_ms = now_ms();
        let sync = async {
            match &target.sync {
                Some(probe) => Some(sample_sync(&target, probe, &self.http).await),
                None => None,
            }
        };
        let collectors = futures::future::join_all(target.collectors.iter().map(|c| async {
            let mut cpu = None::<HostCounters>;
            (
                c.name.clone(),
                sample_collector(&target, c, &self.http, &mut cpu).await,
            )
        }));
        let (sync, samples) = futures::future::join(sync, collectors).await;
        let fresh = WorkloadObservation {
            at_ms,
            sync,
            samples: samples.into_iter().collect(),
        };
        let fresh = WorkloadObservation {
            sync: fresh.sync.map(|s| s.after(lock(&latest).sync.as_ref())),
            ..fresh
        };
        store(&latest, |o| {
            if let Some(s) = &fresh.sync {
                o.sync = Some(s.clone());
            }
            o.samples
                .extend(fresh.samples.iter().map(|(k, v)| (k.clone(), v.clone())));
        });
        Some(fresh)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for w in lock(&self.watches).values() {
            if let Some(t) = &w.task {
                t.abort();
            }
        }
    }
}

async fn stop_task(task: JoinHandle<()>) {
    task.abort();
    // Cancellation drops the task's future, samplers included, before the
    // handle resolves.
    let _ = task.await;
}

fn now_ms() -> i64 {
    hood_clock::now().millis()
}

/// Records a result in the shared observation.
fn store(latest: &Mutex<WorkloadObservation>, update: impl FnOnce(&mut WorkloadObservation)) {
    let mut obs = lock(latest);
    update(&mut obs);
    obs.at_ms = now_ms();
}

/// The workload's task: every sampler, concurrently, until aborted.
async fn run(
    target: Target,
    http: reqwest::Client,
    sync_every: Duration,
    latest: Arc<Mutex<WorkloadObservation>>,
) {
    let mut samplers: Vec<BoxFuture<'_, ()>> = Vec::new();
    if let Some(probe) = &target.sync {
        samplers.push(sync_loop(&target, probe, &http, sync_every, &latest).boxed());
    }
    for c in &target.collectors {
        samplers.push(collector_loop(&target, c, &http, &latest).boxed());
    }
    futures::future::join_all(samplers).await;
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(every);
    // A slow node delays the next sample rather than causing a burst.
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

async fn sync_loop(
    target: &Target,
    probe: &SyncProbe,
    http: &reqwest::Client,
    every: Duration,
    latest: &Mutex<WorkloadObservation>,
) {
    let mut tick = ticker(every);
    loop {
        tick.tick().await;
        let sample = sample_sync(target, probe, http).await;
        store(latest, |o| o.sync = Some(sample.after(o.sync.as_ref())));
    }
}

async fn collector_loop(
    target: &Target,
    c: &CollectorPlan,
    http: &reqwest::Client,
    latest: &Mutex<WorkloadObservation>,
) {
    let mut tick = ticker(Duration::from_secs(u64::from(c.interval_s.max(1))));
    let mut cpu = None::<HostCounters>;
    loop {
        tick.tick().await;
        let sample = sample_collector(target, c, http, &mut cpu).await;
        store(latest, |o| {
            o.samples.insert(c.name.clone(), sample);
        });
    }
}

/// One sample of one collector, within its timeout.
async fn sample_collector(
    target: &Target,
    c: &CollectorPlan,
    http: &reqwest::Client,
    cpu: &mut Option<HostCounters>,
) -> Sample {
    let timeout = Duration::from_secs(u64::from(c.timeout_s.max(1)));
    let at_ms = now_ms();
    let outcome = tokio::time::timeout(timeout, sample_source(target, c, http, timeout, cpu))
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {}s", timeout.as_secs())));
    match outcome {
        Ok(result) => Sample {
            at_ms,
            result: Some(result),
            error: None,
        },
        Err(error) => {
            tracing::debug!(workload = %target.workload_id, collector = %c.name, %error, "collector sample failed");
            Sample {
                at_ms,
                result: None,
                error: Some(error),
            }
        }
    }
}

fn url(target: &Target, port: &str, path: &str) -> Result<String, String> {
    let number = target
        .ports
        .get(port)
        .ok_or_else(|| format!("no port `{port}` allocated"))?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(format!(
        "http://{}{path}",
        std::net::SocketAddr::new(target.address, *number)
    ))
}

/// One round of the sync probe: the three calls run together.
async fn sample_sync(target: &Target, probe: &SyncProbe, http: &reqwest::Client) -> SyncSample {
    let at_ms = now_ms();
    let base = match url(target, &probe.port, "/") {
        Ok(u) => u,
        Err(e) => {
            return SyncSample {
                at_ms,
                error: Some(e),
                ..SyncSample::default()
            }
        }
    };
    let call = |method: &str| {
        let base = base.clone();
        let method = method.to_string();
        async move {
            let r = json_rpc(http, &base, &method, &[], None, SYNC_TIMEOUT).await;
            (method, r)
        }
    };
    let peers_call = async {
        match &probe.peers_method {
            Some(m) => Some(call(m).await),
            None => None,
        }
    };
    let (syncing, head, peers) = tokio::join!(
        call(&probe.syncing_method),
        call(&probe.head_method),
        peers_call
    );
    let mut errors = Vec::new();
    let mut take = |(method, r): (String, Result<serde_json::Value, String>)| match r {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(format!("{method}: {e}"));
            None
        }
    };
    let syncing = take(syncing).map(|v| v != serde_json::Value::Bool(false));
    let head = take(head).and_then(|v| hood_jsonrpc::quantity_i64(&v));
    let peers = peers
        .and_then(&mut take)
        .and_then(|v| hood_jsonrpc::quantity_i64(&v));
    SyncSample {
        at_ms,
        syncing,
        head,
        // Stamped by `SyncSample::after` against the previous round.
        head_since_ms: None,
        peers,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

async fn sample_source(
    target: &Target,
    c: &CollectorPlan,
    http: &reqwest::Client,
    timeout: Duration,
    cpu: &mut Option<HostCounters>,
) -> Result<serde_json::Value, String> {
    match &c.source {
        CollectorSource::JsonRpc {
            port,
            method,
            params,
            path,
            cookie_file,
        } => {
            let auth = match cookie_file {
                Some(t) => Some(read_cookie(target, t)?),
                None => None,
            };
            let u = url(target, port, path.as_deref().unwrap_or("/"))?;
            json_rpc(http, &u, method, params, auth, timeout).await
        }
        CollectorSource::Http { port, path } => {
            let resp = http
                .get(url(target, port, path)?)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status().as_u16();
            let body = read_capped(resp).await?;
            let body: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Ok(serde_json::json!({ "status": status, "body": body }))
        }
        CollectorSource::Prometheus { port, path } => {
            let resp = http
                .get(url(target, port, path)?)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            let body = read_capped(resp).await?;
            Ok(serde_json::Value::Object(parse_prometheus(
                &String::from_utf8_lossy(&body),
            )))
        }
        CollectorSource::System => system_stats(&target.node_dir, cpu),
    }
}

/// `user:password` from a cookie file inside the node directory.
fn read_cookie(target: &Target, template: &str) -> Result<(String, String), String> {
    let path = hood_chains::render(template, &target.vars)
        .map_err(|e| format!("cookie file path: {e}"))?;
    let path = PathBuf::from(path);
    let inside = path.starts_with(&target.node_dir)
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !inside {
        return Err("cookie file is outside the node directory".into());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cookie file unreadable: {}", e.kind()))?;
    let (user, password) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| "cookie file is not `user:password`".to_string())?;
    Ok((user.to_string(), password.to_string()))
}

/// One JSON-RPC call; the `result`, or the error as text.
async fn json_rpc(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: &[serde_json::Value],
    basic_auth: Option<(String, String)>,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let options = hood_jsonrpc::CallOptions {
        timeout,
        basic_auth,
        max_answer_bytes: MAX_BODY_BYTES,
    };
    hood_jsonrpc::call(http, url, method, params, &options)
        .await
        .map_err(|e| match e {
            // A node's own error stays machine-readable for policies.
            hood_jsonrpc::CallError::Rpc { code, message } => {
                serde_json::json!({ "code": code, "message": message }).to_string()
            }
            other => other.to_string(),
        })
}

/// Short text of a transport error: the innermost cause says the most
/// (`Connection refused`), the URL is known from the plan.
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("request failed: {cause}")
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e))? {
        if out.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("the answer exceeds {MAX_BODY_BYTES} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A JSON number: integral values as integers, so CEL arithmetic with
/// integer literals works on them.
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Prometheus text format → metric name → value summed over label sets.
/// Non-finite values (NaN, ±Inf) are skipped: JSON cannot carry them.
pub fn parse_prometheus(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let (name, mut rest) = line.split_at(name_end);
        if rest.starts_with('{') {
            match labels_end(rest) {
                Some(end) => rest = &rest[end..],
                None => continue,
            }
        }
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        *sums.entry(name.to_string()).or_insert(0.0) += value;
    }
    sums.into_iter().map(|(k, v)| (k, number(v))).collect()
}

/// Index just past the `}` closing a label set (quotes and escapes aware).
fn labels_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Host statistics: free space of the node directory's filesystem, memory,
/// load average and CPU use since the previous sample (the agent's host
/// counters, the ones its heartbeats carry).
fn system_stats(
    node_dir: &Path,
    previous: &mut Option<HostCounters>,
) -> Result<serde_json::Value, String> {
    let (total, available) = hood_agent::host_metrics::disk_bytes(node_dir)
        .ok_or("cannot measure the node directory's filesystem")?;
    let mut out = serde_json::Map::new();
    out.insert("disk_free_bytes".into(), serde_json::Value::from(available));
    out.insert("disk_total_bytes".into(), serde_json::Value::from(total));
    if total > 0 {
        out.insert(
            "disk_free_percent".into(),
            number(round2(available as f64 * 100.0 / total as f64)),
        );
    }
    if let Ok(loadavg) = std::fs::read_to_string("/proc/loadavg") {
        let mut it = loadavg.split_whitespace();
        for key in ["load1", "load5", "load15"] {
            if let Some(v) = it.next().and_then(|v| v.parse::<f64>().ok()) {
                out.insert(key.into(), number(v));
            }
        }
    }
    if let Some(now) = hood_agent::host_metrics::sample(node_dir) {
        if now.memory_total_bytes > 0 {
            let used = now
                .memory_total_bytes
                .saturating_sub(now.memory_available_bytes);
            out.insert(
                "memory_used_percent".into(),
                number(round2(used as f64 * 100.0 / now.memory_total_bytes as f64)),
            );
        }
        if let Some(cpu) = previous.as_ref().and_then(|p| cpu_share(p, &now)) {
            out.insert("cpu_percent".into(), number(cpu));
        }
        *previous = Some(now);
    }
    Ok(serde_json::Value::Object(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prometheus_text_is_summed_by_name() {
        let text = r#"
# HELP reth_peers Connected peers.
# TYPE reth_peers gauge
reth_peers 12
reth_sync_stage{stage="Headers"} 100
reth_sync_stage{stage="Bod}ies \"x\""} 50.5
up 1 1700000000000
weird NaN
broken{a="b" 3
"#;
        let m = parse_prometheus(text);
        assert_eq!(m["reth_peers"], serde_json::json!(12));
        assert_eq!(m["reth_sync_stage"], serde_json::json!(150.5));
        assert_eq!(m["up"], serde_json::json!(1));
        assert!(!m.contains_key("weird"));
        assert!(!m.contains_key("broken"));
    }

    #[test]
    fn system_stats_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut cpu = None::<HostCounters>;
        let first = system_stats(dir.path(), &mut cpu).unwrap();
        let pct = first["disk_free_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct));
        assert!(first["disk_free_bytes"].as_u64().is_some());
        assert!(first["load1"].as_f64().is_some());
        assert!(first["memory_used_percent"].as_f64().is_some());
        // Long enough for the CPUs' clocks (100 Hz) to tick.
        std::thread::sleep(Duration::from_millis(200));
        let second = system_stats(dir.path(), &mut cpu).unwrap();
        assert!(cpu.is_some(), "the first sample was kept for the next rate");
        let pct = second["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{second}");
        // A directory not made yet is measured on its parent's filesystem.
        let missing = system_stats(&dir.path().join("missing"), &mut cpu).unwrap();
        assert_eq!(missing["disk_total_bytes"], first["disk_total_bytes"]);
    }
}
