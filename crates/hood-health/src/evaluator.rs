//! One evaluation cycle: read one snapshot, judge every node with the pure
//! rules, and write the outcome in one fenced transaction. Migrations are
//! started (idempotently, by deterministic id) for nodes down past their
//! grace period.

use crate::incidents::{reconcile, Condition};
use crate::observe::{judge_application, parse, Observed};
use crate::NodeRecovery;
use hood_chains::policy::CompiledPolicies;
use hood_chains::{ChainCatalog, SyncNetwork};
use hood_clock::Clock;
use hood_domain::health::{
    best_head, chain_halted, evaluate_heartbeat, evaluate_sync, incident_key, migration_due,
    next_node_state, track_chain_head, HealthRules, HeartbeatInput, IncidentCategory,
};
use hood_domain::lifecycle::{HostState, NodeState, SyncStatus};
use hood_domain::{HostId, Timestamp};
use hood_store::health::HealthStore;
use hood_store::health::{HealthSnapshot, HealthWrite, Lease, NodeHealth};
use hood_store::node::NodeChange;
use hood_store::StoreError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one cycle did, for logs, metrics and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub nodes: usize,
    /// Nodes whose counters (or state) this cycle wrote: only those whose
    /// heartbeat, head, state or policies moved.
    pub nodes_written: usize,
    pub transitions: usize,
    pub incidents_opened: usize,
    pub incidents_updated: usize,
    pub migrations_started: usize,
    pub stale: usize,
    pub read_ms: u64,
    pub judge_ms: u64,
    pub write_ms: u64,
}

/// The evaluator of one replica (it acts only with a lease).
pub struct Evaluator {
    store: Arc<dyn HealthStore>,
    clock: Arc<dyn Clock>,
    rules: HealthRules,
    policies: HashMap<String, CompiledPolicies>,
    /// Chains whose nodes each run their own network (devnets): their
    /// heads are never compared.
    isolated: HashSet<String>,
    recovery: Option<Arc<dyn NodeRecovery>>,
    reference_rpc: BTreeMap<String, String>,
    http: reqwest::Client,
}

/// Workload states that count as the node's heartbeat.
fn workload_alive(state: &str) -> bool {
    matches!(state, "running" | "starting" | "restarting")
}

impl Evaluator {
    pub fn new(
        store: Arc<dyn HealthStore>,
        chains: &ChainCatalog,
        rules: HealthRules,
        recovery: Option<Arc<dyn NodeRecovery>>,
        reference_rpc: BTreeMap<String, String>,
    ) -> Self {
        let mut policies = HashMap::new();
        for chain in chains.iter() {
            match CompiledPolicies::compile(&chain.observation) {
                Ok(p) => {
                    policies.insert(chain.profile.name.clone(), p);
                }
                // The catalog was linted at load; a policy that still does
                // not compile is skipped loudly rather than judged wrongly.
                Err(e) => {
                    tracing::error!(chain = %chain.profile.name, error = %e, "health policies do not compile; skipped")
                }
            }
        }
        let isolated = chains
            .iter()
            .filter(|c| c.runtime.sync.network == SyncNetwork::Isolated)
            .map(|c| c.profile.name.clone())
            .collect();
        Self {
            store,
            clock: hood_clock::system(),
            rules,
            policies,
            isolated,
            recovery,
            reference_rpc,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Judges heartbeats by `clock` (the database's, where replicas share
    /// one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn rules(&self) -> &HealthRules {
        &self.rules
    }

    /// Heads of the configured reference endpoints (best effort).
    async fn reference_heads(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (chain, url) in &self.reference_rpc {
            let head = hood_jsonrpc::call(
                &self.http,
                url,
                "eth_blockNumber",
                &[],
                &hood_jsonrpc::CallOptions::default(),
            )
            .await
            .ok()
            .and_then(|v| hood_jsonrpc::quantity_i64(&v));
            match head {
                Some(h) => {
                    out.insert(chain.clone(), h);
                }
                None => tracing::warn!(chain = %chain, "reference head unavailable this cycle"),
            }
        }
        out
    }

    /// Runs one cycle under `lease`. `Fenced` means another replica leads.
    pub async fn run_cycle(&self, lease: &Lease) -> Result<CycleReport, StoreError> {
        let started = Instant::now();
        let snapshot = self.store.health_snapshot().await?;
        // Incidents other parts of Hood raise and clear (billing's) are
        // not health's to resolve.
        let unresolved: Vec<_> = self
            .store
            .unresolved_incidents()
            .await?
            .into_iter()
            .filter(|i| i.category.judged_by_health())
            .collect();
        let heads = self.store.chain_heads().await?;
        let references = if self.reference_rpc.is_empty() {
            BTreeMap::new()
        } else {
            self.reference_heads().await
        };
        let read_ms = elapsed_ms(started);
        let now = self.clock.now();
        let judged = Instant::now();
        let plan = self.judge(&snapshot, &unresolved, &heads, &references, now);
        let judge_ms = elapsed_ms(judged);

        let nodes_written = plan
            .writes
            .iter()
            .filter(|w| matches!(w, HealthWrite::Node { .. }))
            .count();
        let written = Instant::now();
        let applied = if plan.writes.is_empty() {
            hood_store::health::ApplyReport::default()
        } else {
            self.store.apply_health(lease, &plan.writes, now).await?
        };
        let mut migrations_started = 0;
        let mut migration_notes = Vec::new();
        if let Some(recovery) = &self.recovery {
            for (node_id, version, health) in plan.migrate {
                match recovery.start_migration(node_id, version).await {
                    Ok(workflow) => {
                        migrations_started += 1;
                        tracing::info!(node_id = %node_id, version, workflow = %workflow, "migration started");
                        let mut health = health;
                        health.last_migration_at = Some(now);
                        migration_notes.push(HealthWrite::Node {
                            node_id,
                            expected_version: version,
                            change: None,
                            health,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(node_id = %node_id, error = %e, "could not start migration")
                    }
                }
            }
        }
        if !migration_notes.is_empty() {
            // Counters are written whatever the node version (the workflow
            // may already have moved it), so the cooldown always holds.
            self.store
                .apply_health(lease, &migration_notes, now)
                .await?;
        }
        Ok(CycleReport {
            nodes: snapshot.len(),
            nodes_written,
            transitions: applied.nodes_changed,
            incidents_opened: applied.incidents_opened,
            incidents_updated: applied.incidents_updated,
            migrations_started,
            stale: applied.stale_nodes.len(),
            read_ms,
            judge_ms,
            write_ms: elapsed_ms(written),
        })
    }

    /// The pure part of a cycle: decisions from a snapshot.
    fn judge(
        &self,
        snapshot: &[HealthSnapshot],
        unresolved: &[hood_store::health::Incident],
        heads: &BTreeMap<String, hood_domain::health::ChainHeadTrack>,
        references: &BTreeMap<String, i64>,
        now: Timestamp,
    ) -> Plan {
        let rules = &self.rules;
        let now_ms = now.millis();
        let observed = parse_all(snapshot);
        let fresh = |s: &HealthSnapshot| {
            s.host_last_seen
                .is_some_and(|t| now_ms - t.millis() <= rules.heartbeat_timeout_ms)
        };

        // Best head per chain, among nodes whose reports are current.
        let mut chain_heads: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (s, o) in snapshot.iter().zip(&observed) {
            if self.isolated.contains(&s.node.chain) {
                continue;
            }
            if let (true, Some(h)) = (fresh(s), o.sync.head) {
                chain_heads
                    .entry(s.node.chain.as_str())
                    .or_default()
                    .push(h);
            }
        }
        let mut writes = Vec::new();
        let mut halted: BTreeMap<&str, bool> = BTreeMap::new();
        // Once per chain, not per node: the fleet is judged in linear time.
        let mut best_heads: BTreeMap<&str, i64> = BTreeMap::new();
        for (chain, hs) in &chain_heads {
            let Some(best) = best_head(hs.iter().copied(), references.get(*chain).copied()) else {
                continue;
            };
            best_heads.insert(chain, best);
            let prev = heads.get(*chain).copied();
            let track = track_chain_head(prev, best, now_ms);
            if prev != Some(track) {
                writes.push(HealthWrite::ChainHead {
                    chain: (*chain).to_owned(),
                    track,
                });
            }
            halted.insert(chain, chain_halted(track, hs.len(), now_ms, rules));
        }

        // Hosts that carry several nodes, all missing: one host incident.
        let mut host_nodes: BTreeMap<HostId, (usize, usize)> = BTreeMap::new();

        let mut conditions: Vec<Condition> = Vec::new();
        let mut migrate = Vec::new();
        for (s, o) in snapshot.iter().zip(&observed) {
            let node = &s.node;
            let prev = s.health.clone().unwrap_or_default();
            let mut health = prev.clone();
            let beat = evaluate_heartbeat(
                HeartbeatInput {
                    last_seen_ms: s.host_last_seen.map(Timestamp::millis),
                    workload_running: s
                        .workload
                        .as_ref()
                        .is_some_and(|w| workload_alive(&w.state)),
                    now_ms,
                    previous_misses: prev.consecutive_misses,
                },
                rules,
            );
            let judged = node.state.is_heartbeat_evaluated() || node.state == NodeState::Down;
            // Misses count towards going down; a node already down (or in a
            // workflow) starts from zero when it comes back, or the first
            // late report after a migration would take it straight down.
            health.consecutive_misses = if node.state.is_heartbeat_evaluated() {
                beat.consecutive_misses
            } else {
                0
            };
            if let Some(h) = node.host_id {
                let e = host_nodes.entry(h).or_default();
                e.0 += 1;
                if judged && beat.missed {
                    e.1 += 1;
                }
            }

            let best = best_heads.get(node.chain.as_str()).copied();
            let sync = if beat.missed {
                SyncStatus::Unknown
            } else {
                evaluate_sync(o.sync, best, rules)
            };
            // The agent says since when it has seen the head: nothing to
            // store for it. Older agents do not, and then the head and the
            // moment it changed are kept here (a write per moved head).
            let head_age_s = match (o.sync.head, o.sync.head_since_ms) {
                (Some(_), Some(since)) => Some((now_ms - since).max(0) / 1000),
                (head, _) => {
                    if let Some(h) = head {
                        if prev.last_head != Some(h) {
                            health.last_head = Some(h);
                            health.head_changed_at = Some(now);
                        }
                    }
                    health.head_changed_at.map(|t| (now_ms - t.millis()) / 1000)
                }
            };
            let sync_json = hood_chains::policy::sync_view(
                sync.as_str(),
                o.sync.head,
                best,
                references.get(&node.chain).copied(),
                head_age_s,
                o.peers,
            );
            let node_json = hood_chains::policy::node_view(
                &node.node_type,
                (now_ms - node.created_at.millis()) / 1000,
            );
            let app = if beat.missed {
                hood_domain::lifecycle::ApplicationHealth::Unknown
            } else {
                judge_application(
                    self.policies.get(&node.chain),
                    o,
                    sync_json,
                    node_json,
                    &mut health.policy_firing,
                    now_ms,
                )
            };
            let target = if judged {
                next_node_state(node.state, beat, sync, app)
            } else {
                None
            };
            let state_after = target.unwrap_or(node.state);
            let change = (judged
                && (target.is_some() || sync != node.sync_status || app != node.app_health))
                .then(|| NodeChange {
                    state: target,
                    sync_status: (sync != node.sync_status).then_some(sync),
                    app_health: (app != node.app_health).then_some(app),
                    // The head is recorded with each change, not each block:
                    // a write per node per cycle would not scale.
                    head_height: o.sync.head.map(Some),
                    message: describe(target, beat.consecutive_misses, sync, app),
                    ..NodeChange::default()
                });
            let version_after = node.version + i64::from(change.is_some());
            if state_after == NodeState::Down {
                if health.down_since.is_none() {
                    health.down_since = Some(now);
                }
                health.down_version = Some(version_after);
            } else {
                health.down_since = None;
                health.down_version = None;
            }

            if change.is_some() || health != prev || s.health.is_none() {
                writes.push(HealthWrite::Node {
                    node_id: node.id,
                    expected_version: node.version,
                    change,
                    health: health.clone(),
                });
            }

            if state_after == NodeState::Down {
                if let Some(since) = health.down_since {
                    if migration_due(
                        since.millis(),
                        health.last_migration_at.map(Timestamp::millis),
                        now_ms,
                        rules,
                    ) {
                        migrate.push((node.id, version_after, health.clone()));
                    }
                }
            }

            // Conditions for incidents.
            let down_like = matches!(state_after, NodeState::Down | NodeState::Migrating);
            if down_like {
                let detail = format!(
                    "no heartbeat from node {} for {} consecutive evaluations",
                    node.name,
                    health.consecutive_misses.max(rules.misses_for_down)
                );
                let mut c = Condition::node(
                    IncidentCategory::NodeDown,
                    node.org_id,
                    node.id,
                    &node.chain,
                    format!("node {} is down", node.name),
                    detail,
                );
                c.root_key = node
                    .host_id
                    .map(|h| incident_key(IncidentCategory::HostUnreachable, &h.to_string()));
                conditions.push(c);
            } else if sync == SyncStatus::Lagging {
                let lag = o
                    .sync
                    .head
                    .zip(best)
                    .map(|(h, b)| b - h)
                    .unwrap_or_default();
                let mut c = Condition::node(
                    IncidentCategory::NodeLagging,
                    node.org_id,
                    node.id,
                    &node.chain,
                    format!("node {} is lagging", node.name),
                    format!("{lag} blocks behind the best head"),
                );
                c.root_key = Some(chain_halt_key(&node.org_id.to_string(), &node.chain));
                conditions.push(c);
            }
            if !down_like && app == hood_domain::lifecycle::ApplicationHealth::Critical {
                let firing: Vec<&str> = health.policy_firing.keys().map(String::as_str).collect();
                let mut c = Condition::node(
                    IncidentCategory::AppCritical,
                    node.org_id,
                    node.id,
                    &node.chain,
                    format!("node {} fails a critical check", node.name),
                    format!("policies firing: {}", firing.join(", ")),
                );
                c.root_key = Some(chain_halt_key(&node.org_id.to_string(), &node.chain));
                conditions.push(c);
            }
        }

        // Root conditions: a halted chain (per org that runs it), a dead host
        // carrying several nodes.
        let mut roots: Vec<Condition> = Vec::new();
        for (s, _) in snapshot.iter().zip(&observed) {
            let node = &s.node;
            if halted.get(node.chain.as_str()).copied().unwrap_or(false) {
                let key = chain_halt_key(&node.org_id.to_string(), &node.chain);
                if !roots.iter().any(|r| r.key == key) {
                    roots.push(Condition {
                        key,
                        category: IncidentCategory::ChainHalted,
                        org_id: node.org_id,
                        node_id: None,
                        chain: Some(node.chain.clone()),
                        title: format!("chain {} has halted", node.chain),
                        detail: "the best head of every reporting node has not advanced".into(),
                        root_key: None,
                    });
                }
            }
            if let Some(h) = node.host_id {
                let (total, missing) = host_nodes.get(&h).copied().unwrap_or_default();
                let key = incident_key(IncidentCategory::HostUnreachable, &h.to_string());
                let dead =
                    total >= 2 && missing == total && s.host_state != Some(HostState::Deleted);
                if dead && !roots.iter().any(|r| r.key == key) {
                    roots.push(Condition {
                        key,
                        category: IncidentCategory::HostUnreachable,
                        org_id: node.org_id,
                        node_id: None,
                        chain: None,
                        title: format!("host {h} is unreachable"),
                        detail: format!("all {total} nodes on the host stopped reporting"),
                        root_key: None,
                    });
                }
            }
        }
        // A root only covers children while it holds.
        for c in &mut conditions {
            if let Some(rk) = &c.root_key {
                if !roots.iter().any(|r| &r.key == rk) {
                    c.root_key = None;
                }
            }
        }
        conditions.extend(roots);
        writes.extend(reconcile(&conditions, unresolved, rules, now));
        Plan { writes, migrate }
    }
}

struct Plan {
    writes: Vec<HealthWrite>,
    migrate: Vec<(hood_domain::NodeId, i64, NodeHealth)>,
}

/// Fleets at least this large parse their agents' reports on every core.
const PARALLEL_PARSE_FROM: usize = 4_096;

/// Every node's report, parsed: the costliest per-node step of a cycle
/// that needs nothing shared, so a large fleet spreads it over the cores
/// (scoped threads; the order is the snapshot's).
fn parse_all(snapshot: &[HealthSnapshot]) -> Vec<Observed> {
    let reports: Vec<Option<&serde_json::Value>> = snapshot
        .iter()
        .map(|s| s.workload.as_ref().map(|w| &w.observation))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    parse_reports(&reports, cores)
}

fn parse_reports(reports: &[Option<&serde_json::Value>], cores: usize) -> Vec<Observed> {
    let one = |r: &Option<&serde_json::Value>| r.map(parse).unwrap_or_default();
    if cores < 2 || reports.len() < PARALLEL_PARSE_FROM {
        return reports.iter().map(one).collect();
    }
    let chunk = reports.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let parts: Vec<_> = reports
            .chunks(chunk)
            .map(|part| {
                let handle = scope.spawn(move || part.iter().map(one).collect::<Vec<_>>());
                (part.len(), handle)
            })
            .collect();
        parts
            .into_iter()
            // A parse never panics (a bad report is no observation); were
            // one to, its nodes are judged unobserved, still one per node,
            // rather than the cycle failing.
            .flat_map(|(len, handle)| {
                handle
                    .join()
                    .unwrap_or_else(|_| (0..len).map(|_| Observed::default()).collect())
            })
            .collect()
    })
}

fn chain_halt_key(org: &str, chain: &str) -> String {
    incident_key(IncidentCategory::ChainHalted, &format!("{org}:{chain}"))
}

fn describe(
    target: Option<NodeState>,
    misses: u32,
    sync: SyncStatus,
    app: hood_domain::lifecycle::ApplicationHealth,
) -> String {
    match target {
        Some(NodeState::Down) => format!("{misses} consecutive heartbeats missed"),
        Some(s) => format!(
            "health: now {} (sync {}, application {})",
            s.as_str(),
            sync.as_str(),
            app.as_str()
        ),
        None => format!(
            "observed sync {}, application {}",
            sync.as_str(),
            app.as_str()
        ),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parsed_on_several_cores_keep_the_snapshot_order() {
        let reports: Vec<Option<serde_json::Value>> = (0..PARALLEL_PARSE_FROM as i64 + 7)
            .map(|i| {
                (i % 5 != 0).then(|| {
                    serde_json::json!({"at_ms": 1, "sync": {"at_ms": 1, "syncing": false, "head": i}})
                })
            })
            .collect();
        let refs: Vec<Option<&serde_json::Value>> = reports.iter().map(Option::as_ref).collect();
        let serial = parse_reports(&refs, 1);
        let parallel = parse_reports(&refs, 3);
        assert_eq!(parallel.len(), reports.len());
        for (i, (a, b)) in serial.iter().zip(&parallel).enumerate() {
            let expected = (i % 5 != 0).then_some(i as i64);
            assert_eq!(a.sync.head, expected, "node {i}");
            assert_eq!(b.sync.head, expected, "node {i}");
        }
    }
}
