//! Evaluation of `observation.yaml` policies: CEL expressions over the
//! agent's latest collector samples, the node's sync view and the node.
//!
//! The catalog's lint ([`crate::cel`]) only lexes expressions; here they are
//! parsed for real by `cel-interpreter`, once when a catalog is loaded (so
//! `hood chain lint` rejects what the evaluator could not run) and once per
//! [`CompiledPolicies`] the health evaluator keeps per chain.
//!
//! Evaluation is pure and per round: this module says which policies are
//! true *now*. How long a policy has been true (`for_s`) is state the
//! caller keeps; [`application_health`] combines both.
//!
//! Collector variables follow the source's CEL shape (see
//! [`crate::Source`]): a `jsonrpc` collector is `{result, error}` (a
//! JSON-RPC error object the agent reported as JSON text becomes a map, so
//! `x.error.code` works), an `http` collector `{status, body}`, a
//! `prometheus` collector its metric map and `system` its statistics; every
//! variable also carries `at_ms`, and `error` when the sample failed. A
//! collector without a sample yet is an empty map: `has(x.error)` is false
//! and reading a field is an evaluation error, which never fires.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Once};

use cel_interpreter::extractors::This;
use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, ExecutionError, Program, Value};

use crate::lint::{index, join, FileLint};
use crate::observation::{HealthOutcome, Observation, Severity};
use crate::runtime::Source;

/// A policy that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The expression is not valid CEL.
    #[error("policy `{policy}`: invalid CEL expression: {message}")]
    Syntax {
        /// Policy name.
        policy: String,
        /// What the parser said, with line and column.
        message: String,
    },
}

/// What policies read in one evaluation round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyInput {
    /// Collector name → its sample as the agent reported it
    /// (`{"result": …, "error": …, "at_ms": …}`, absent keys omitted).
    /// Collectors missing here are empty maps in CEL.
    pub samples: BTreeMap<String, serde_json::Value>,
    /// The node's sync view: `{"status", "head", "target",
    /// "reference_head", "lag", "head_age_s", "peers"}` (absent keys
    /// omitted; `null` = empty map).
    pub sync: serde_json::Value,
    /// The node: `{"node_type", "uptime_s"}`.
    pub node: serde_json::Value,
}

impl PolicyInput {
    /// The variables of one evaluation: the agent's samples as reported,
    /// the node's sync view ([`sync_view`]) and the node ([`node_view`]).
    pub fn from_observation(
        report: &hood_domain::workload::WorkloadObservation,
        sync: serde_json::Value,
        node: serde_json::Value,
    ) -> Self {
        let samples = report
            .samples
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        Self {
            samples,
            sync,
            node,
        }
    }
}

/// One policy's verdict in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    /// Policy name.
    pub name: String,
    /// The expression is true now (not yet held for `for_s`).
    pub firing: bool,
    /// Why the expression could not be evaluated (missing sample field,
    /// wrong type, …); the policy then counts as not firing.
    pub error: Option<String>,
    /// Incident severity, from the policy.
    pub severity: Severity,
    /// Application health while firing long enough, from the policy.
    pub application_health: Option<HealthOutcome>,
    /// Seconds the expression must hold before it counts, from the policy.
    pub for_s: u32,
}

/// How a collector's sample is shaped into its CEL variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{result, error, at_ms}`; a JSON error object in `error` is parsed.
    JsonRpc,
    /// The result's own fields (`status`/`body`, metrics, statistics) plus
    /// `error` and `at_ms`.
    Flat,
}

#[derive(Debug)]
struct CompiledPolicy {
    name: String,
    program: Program,
    severity: Severity,
    application_health: Option<HealthOutcome>,
    for_s: u32,
}

/// The policies of one chain, parsed once and evaluated every round.
#[derive(Debug)]
pub struct CompiledPolicies {
    policies: Vec<CompiledPolicy>,
    collectors: BTreeMap<String, Shape>,
}

impl CompiledPolicies {
    /// Parses every policy expression; the error names the first policy
    /// that is not valid CEL.
    pub fn compile(obs: &Observation) -> Result<Self, PolicyError> {
        let policies = obs
            .policies
            .iter()
            .map(|p| {
                let program = parse(&p.expression).map_err(|message| PolicyError::Syntax {
                    policy: p.name.clone(),
                    message,
                })?;
                Ok(CompiledPolicy {
                    name: p.name.clone(),
                    program,
                    severity: p.severity,
                    application_health: p.application_health,
                    for_s: p.for_s,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self {
            policies,
            collectors: shapes(obs),
        })
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when the chain has no policies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Evaluates every policy over `input`, in declaration order. An
    /// evaluation error is reported in the result and does not fire: a
    /// missing sample must not raise an incident on its own.
    pub fn evaluate(&self, input: &PolicyInput) -> Vec<PolicyResult> {
        let ctx = context(&self.collectors, input);
        self.policies
            .iter()
            .map(|p| {
                let (firing, error) = run(&p.program, &ctx);
                PolicyResult {
                    name: p.name.clone(),
                    firing,
                    error,
                    severity: p.severity,
                    application_health: p.application_health,
                    for_s: p.for_s,
                }
            })
            .collect()
    }
}

/// The CEL shape of each of a chain's collectors.
fn shapes(obs: &Observation) -> BTreeMap<String, Shape> {
    obs.collectors
        .iter()
        .map(|c| {
            let shape = match c.source {
                Source::JsonRpc(_) => Shape::JsonRpc,
                _ => Shape::Flat,
            };
            (c.name.clone(), shape)
        })
        .collect()
}

/// The variables of one evaluation: each collector's sample (an empty map
/// when it has none), `sync` and `node`.
fn context(collectors: &BTreeMap<String, Shape>, input: &PolicyInput) -> Context<'static> {
    let mut ctx = Context::default();
    ctx.add_function("hex_to_int", hex_to_int);
    for (name, shape) in collectors {
        let value = input
            .samples
            .get(name)
            .map(|s| collector_value(*shape, s))
            .unwrap_or_else(empty_map);
        ctx.add_variable_from_value(name.as_str(), value);
    }
    ctx.add_variable_from_value("sync", object_or_empty(&input.sync));
    ctx.add_variable_from_value("node", object_or_empty(&input.node));
    ctx
}

/// Runs a boolean expression: (its value, why it could not be evaluated).
fn run(program: &Program, ctx: &Context) -> (bool, Option<String>) {
    // The interpreter is young; a panic in it must cost one verdict, not
    // the caller.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| program.execute(ctx)));
    match outcome {
        Ok(Ok(Value::Bool(b))) => (b, None),
        Ok(Ok(other)) => (
            false,
            Some(format!(
                "expression returned {}, not a bool",
                other.type_of()
            )),
        ),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (false, Some("the CEL interpreter failed".to_string())),
    }
}

/// The `sync` variable of policies and checks: the node's sync status,
/// heads, lag, how long its head has not moved and its peers (absent
/// values are `null`).
pub fn sync_view(
    status: &str,
    head: Option<i64>,
    target: Option<i64>,
    reference: Option<i64>,
    head_age_s: Option<i64>,
    peers: Option<i64>,
) -> serde_json::Value {
    serde_json::json!({
        "status": status,
        "head": head,
        "target": target,
        "reference_head": reference,
        "lag": head.zip(target).map(|(h, b)| b - h),
        "head_age_s": head_age_s,
        "peers": peers,
    })
}

/// The `node` variable of policies and checks.
pub fn node_view(node_type: &str, uptime_s: i64) -> serde_json::Value {
    serde_json::json!({ "node_type": node_type, "uptime_s": uptime_s })
}

/// Named conditions over the same variables as policies (an upgrade
/// manifest's pre- and post-checks), parsed once.
#[derive(Debug)]
pub struct CompiledChecks {
    checks: Vec<(String, Program)>,
    collectors: BTreeMap<String, Shape>,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// Why the expression could not be evaluated (then it did not pass).
    pub error: Option<String>,
}

impl CompiledChecks {
    /// Parses every check against the chain's collectors.
    pub fn compile(
        checks: &[crate::upgrade::UpgradeCheck],
        obs: &Observation,
    ) -> Result<Self, PolicyError> {
        let checks = checks
            .iter()
            .map(|c| {
                parse(&c.expression)
                    .map(|p| (c.name.clone(), p))
                    .map_err(|message| PolicyError::Syntax {
                        policy: c.name.clone(),
                        message,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            checks,
            collectors: shapes(obs),
        })
    }

    /// Every check's verdict, in declaration order.
    pub fn evaluate(&self, input: &PolicyInput) -> Vec<CheckResult> {
        let ctx = context(&self.collectors, input);
        self.checks
            .iter()
            .map(|(name, program)| {
                let (passed, error) = run(program, &ctx);
                CheckResult {
                    name: name.clone(),
                    passed,
                    error,
                }
            })
            .collect()
    }
}

/// The worst application-health outcome among policies that fire and have
/// fired long enough (`firing_long_enough(name)`, the caller's `for_s`
/// bookkeeping): `Critical` beats `Degraded`; `None` when none applies.
pub fn application_health(
    results: &[PolicyResult],
    firing_long_enough: impl Fn(&str) -> bool,
) -> Option<HealthOutcome> {
    results
        .iter()
        .filter(|r| r.firing)
        .filter_map(|r| r.application_health.map(|h| (h, r.name.as_str())))
        .filter(|(_, name)| firing_long_enough(name))
        .map(|(h, _)| h)
        .max_by_key(|h| match h {
            HealthOutcome::Degraded => 1,
            HealthOutcome::Critical => 2,
        })
}

/// Lint hook: every policy expression must parse as CEL. Expressions the
/// lexical check already rejected are skipped so a mistake is reported once.
pub(crate) fn lint_policies(l: &mut FileLint, obs: &Observation) {
    for (i, p) in obs.policies.iter().enumerate() {
        if crate::cel::analyze(&p.expression).is_err() {
            continue;
        }
        if let Err(message) = parse(&p.expression) {
            l.problem(
                join(&index("policies", i), "expression"),
                format!("policy `{}`: invalid CEL expression: {message}", p.name),
            );
        }
    }
}

thread_local! {
    /// Set while this thread runs the CEL parser, whose panics we catch.
    static PARSING: Cell<bool> = const { Cell::new(false) };
}

/// Parses an expression into a program, as one line of `line:column:
/// message` per parser error.
///
/// cel-parser 0.10 panics (instead of returning an error) on some
/// malformed input, such as a trailing operator (`a ==`). The panic is
/// caught and reported as a syntax error; a panic hook installed once keeps
/// the default hook from printing those panics while leaving every other
/// panic to the previous hook.
fn parse(src: &str) -> Result<Program, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PARSING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    PARSING.with(|p| p.set(true));
    let outcome = std::panic::catch_unwind(|| {
        Program::compile(src).map_err(|errs| {
            errs.errors
                .iter()
                .map(|e| format!("{}:{}: {}", e.pos.0, e.pos.1, e.msg))
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    PARSING.with(|p| p.set(false));
    match outcome {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(message)) if !message.is_empty() => Err(message),
        Ok(Err(_)) => Err("syntax error".to_string()),
        Err(_) => Err("syntax error (incomplete expression)".to_string()),
    }
}

/// `hex_to_int(string) -> int`: a `0x` JSON-RPC quantity as an integer
/// (the domain's one quantity parser).
fn hex_to_int(This(s): This<Arc<String>>) -> Result<i64, ExecutionError> {
    let value = hood_domain::rpc::parse_quantity(&s).ok_or_else(|| {
        ExecutionError::function_error(
            "hex_to_int",
            format!("`{s}` is not a 0x-prefixed hex quantity"),
        )
    })?;
    i64::try_from(value).map_err(|e| ExecutionError::function_error("hex_to_int", e))
}

fn empty_map() -> Value {
    Value::Map(Map {
        map: Arc::new(HashMap::new()),
    })
}

fn map_value(m: HashMap<Key, Value>) -> Value {
    Value::Map(Map { map: Arc::new(m) })
}

fn object_or_empty(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Object(_) => json_to_cel(v),
        _ => empty_map(),
    }
}

/// A collector's sample as its CEL variable (see the module docs).
fn collector_value(shape: Shape, sample: &serde_json::Value) -> Value {
    let Some(obj) = sample.as_object() else {
        return empty_map();
    };
    let mut m = HashMap::new();
    match (shape, obj.get("result")) {
        (_, None | Some(serde_json::Value::Null)) => {}
        (Shape::Flat, Some(serde_json::Value::Object(fields))) => {
            for (k, v) in fields {
                m.insert(Key::from(k.as_str()), json_to_cel(v));
            }
        }
        (_, Some(result)) => {
            m.insert(Key::from("result"), json_to_cel(result));
        }
    }
    if let Some(at) = obj.get("at_ms").filter(|v| !v.is_null()) {
        m.insert(Key::from("at_ms"), json_to_cel(at));
    }
    match obj.get("error") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(text)) if shape == Shape::JsonRpc => {
            let parsed = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .filter(serde_json::Value::is_object);
            let value = match parsed {
                Some(object) => json_to_cel(&object),
                None => Value::String(Arc::new(text.clone())),
            };
            m.insert(Key::from("error"), value);
        }
        Some(other) => {
            m.insert(Key::from("error"), json_to_cel(other));
        }
    }
    map_value(m)
}

/// JSON to CEL. Integral numbers become `int` (or `uint` beyond i64) so
/// arithmetic with literals works; the interpreter rejects `uint * int`.
fn json_to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(fields) => map_value(
            fields
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), json_to_cel(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ChainCatalog;
    use serde_json::json;

    fn anvil() -> CompiledPolicies {
        let catalog = ChainCatalog::builtin().expect("builtin catalog");
        let chain = catalog.get("ethereum-anvil").expect("anvil chain");
        CompiledPolicies::compile(&chain.observation).expect("compiles")
    }

    fn result<'a>(results: &'a [PolicyResult], name: &str) -> &'a PolicyResult {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no result for {name}"))
    }

    fn input(samples: serde_json::Value, sync: serde_json::Value) -> PolicyInput {
        PolicyInput {
            samples: serde_json::from_value(samples).unwrap(),
            sync,
            node: json!({"node_type": "dev", "uptime_s": 100}),
        }
    }

    #[test]
    fn upgrade_checks_read_collectors_and_the_sync_view() {
        let catalog = ChainCatalog::builtin().expect("builtin catalog");
        let chain = catalog.get("ethereum-anvil").unwrap();
        let upgrade = chain.upgrade("anvil-1.5.1-to-1.7.1").unwrap();
        let post = CompiledChecks::compile(&upgrade.post_checks, &chain.observation).unwrap();
        let pre = CompiledChecks::compile(&upgrade.pre_checks, &chain.observation).unwrap();
        let sync = |age: i64| sync_view("synced", Some(9), None, None, Some(age), None);
        let good = input(
            json!({"chain_id": {"result": "0x7a69", "at_ms": 1},
                   "block_number": {"result": "0x9", "at_ms": 1}}),
            sync(2),
        );
        let passed = |r: &[CheckResult]| r.iter().map(|c| c.passed).collect::<Vec<_>>();
        assert_eq!(passed(&post.evaluate(&good)), [true, true]);
        assert_eq!(passed(&pre.evaluate(&good)), [true, true]);
        // Another chain, and a head that stopped: both fail, by name.
        let wrong = input(
            json!({"chain_id": {"result": "0x1", "at_ms": 1}}),
            sync(600),
        );
        let r = post.evaluate(&wrong);
        assert_eq!(passed(&r), [false, false]);
        assert_eq!(r[0].name, "right_chain");
        // No sample yet: an evaluation error, which never passes.
        let r = post.evaluate(&input(json!({}), sync(1)));
        assert!(!r[0].passed && r[0].error.is_some(), "{r:?}");
        // Not CEL: refused at compile, naming the check.
        let bad = [crate::upgrade::UpgradeCheck {
            name: "broken".into(),
            description: None,
            expression: "a ==".into(),
        }];
        assert!(matches!(
            CompiledChecks::compile(&bad, &chain.observation),
            Err(PolicyError::Syntax { policy, .. }) if policy == "broken"
        ));
        assert_eq!(sync(5)["lag"], serde_json::Value::Null);
        assert_eq!(
            sync_view("synced", Some(7), Some(10), None, None, None)["lag"],
            3
        );
    }

    #[test]
    fn every_builtin_policy_compiles() {
        let catalog = ChainCatalog::builtin().expect("builtin catalog");
        let mut count = 0;
        for chain in catalog.iter() {
            for p in &chain.observation.policies {
                parse(&p.expression)
                    .unwrap_or_else(|e| panic!("{}/observation.yaml {}: {e}", chain.name, p.name));
                count += 1;
            }
            let compiled = CompiledPolicies::compile(&chain.observation).unwrap();
            assert_eq!(compiled.len(), chain.observation.policies.len());
        }
        assert!(count > 10, "only {count} policies found");
    }

    #[test]
    fn wrong_chain_id_fires_on_another_chain_only() {
        let p = anvil();
        let r = p.evaluate(&input(
            json!({"chain_id": {"at_ms": 1, "result": "0x1"}}),
            json!({}),
        ));
        let wrong = result(&r, "wrong_chain_id");
        assert!(wrong.firing);
        assert_eq!(wrong.error, None);
        assert_eq!(wrong.severity, Severity::Critical);
        assert_eq!(wrong.application_health, Some(HealthOutcome::Critical));

        let r = p.evaluate(&input(
            json!({"chain_id": {"at_ms": 1, "result": "0x7a69"}}),
            json!({}),
        ));
        let wrong = result(&r, "wrong_chain_id");
        assert!(!wrong.firing);
        assert_eq!(wrong.error, None);
    }

    #[test]
    fn head_stalled_fires_after_sixty_seconds() {
        let p = anvil();
        let at = |age: i64| {
            let r = p.evaluate(&input(
                json!({}),
                json!({"status": "synced", "head": 5, "head_age_s": age}),
            ));
            result(&r, "head_stalled").clone()
        };
        assert!(at(61).firing);
        assert!(!at(59).firing);
        assert_eq!(at(59).error, None);
        assert_eq!(at(61).for_s, 30);
    }

    #[test]
    fn rpc_errors_fires_on_an_error_sample() {
        let p = anvil();
        let err = json!({"code": -32603, "message": "internal error"}).to_string();
        let r = p.evaluate(&input(
            json!({"block_number": {"at_ms": 1, "error": err}}),
            json!({}),
        ));
        assert!(result(&r, "rpc_errors").firing);
        let r = p.evaluate(&input(
            json!({"block_number": {"at_ms": 1, "result": "0x10"}}),
            json!({}),
        ));
        let ok = result(&r, "rpc_errors");
        assert!(!ok.firing);
        assert_eq!(ok.error, None);
    }

    #[test]
    fn missing_samples_do_not_fire_and_say_why() {
        let p = anvil();
        let r = p.evaluate(&PolicyInput::default());
        // has() on a collector without a sample is simply false.
        let rpc = result(&r, "rpc_errors");
        assert!(!rpc.firing);
        assert_eq!(rpc.error, None);
        for name in ["wrong_chain_id", "head_stalled", "disk_low"] {
            let res = result(&r, name);
            assert!(!res.firing, "{name}");
            assert!(
                res.error.is_some(),
                "{name} should report an evaluation error"
            );
        }
    }

    #[test]
    fn sample_shapes_follow_the_source() {
        let obs: Observation = serde_yaml::from_str(
            r#"
collectors:
  - name: health
    interval_s: 30
    source: { jsonrpc: { port: rpc, method: getHealth } }
  - name: net_info
    interval_s: 30
    source: { http: { port: rpc, path: /net_info } }
  - name: metrics
    interval_s: 30
    source: { prometheus: { port: metrics } }
  - name: system
    interval_s: 30
    source: { system: {} }
policies:
  - name: behind
    expression: has(health.error) && health.error.code == -32005
    severity: warning
  - name: transport
    expression: has(health.error) && health.error == 'connection refused'
    severity: warning
  - name: few_peers
    expression: net_info.status == 200 && int(net_info.body.result.n_peers) < 5
    severity: warning
  - name: height
    expression: metrics.cometbft_consensus_height > 10.5
    severity: info
  - name: disk_low
    expression: system.disk_free_percent < 10
    severity: warning
    application_health: degraded
  - name: mempool
    expression: metrics.pool_size * 95 / 100 > 9
    severity: info
"#,
        )
        .unwrap();
        let p = CompiledPolicies::compile(&obs).unwrap();
        let r = p.evaluate(&input(
            json!({
                "health": {"at_ms": 1, "error": "{\"code\":-32005,\"message\":\"Node is behind\"}"},
                "net_info": {"at_ms": 1, "result": {"status": 200, "body": {"result": {"n_peers": "3"}}}},
                "metrics": {"at_ms": 1, "result": {"cometbft_consensus_height": 11.0, "pool_size": 20}},
                "system": {"at_ms": 1, "result": {"disk_free_percent": 7.5, "load1": 0.2}},
            }),
            json!({}),
        ));
        for name in ["behind", "few_peers", "height", "disk_low", "mempool"] {
            let res = result(&r, name);
            assert!(res.firing, "{name}: {res:?}");
            assert_eq!(res.error, None, "{name}");
        }
        assert!(!result(&r, "transport").firing);

        let r = p.evaluate(&input(
            json!({"health": {"at_ms": 1, "error": "connection refused"}}),
            json!({}),
        ));
        assert!(result(&r, "transport").firing);
        let behind = result(&r, "behind");
        assert!(!behind.firing);
        assert!(behind.error.is_some());
    }

    #[test]
    fn non_boolean_results_are_errors() {
        let obs: Observation = serde_yaml::from_str(
            "policies:\n  - name: n\n    expression: sync.head + 1\n    severity: info\n",
        )
        .unwrap();
        let r = CompiledPolicies::compile(&obs)
            .unwrap()
            .evaluate(&input(json!({}), json!({"head": 1})));
        assert!(!r[0].firing);
        assert!(r[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("not a bool"));
    }

    #[test]
    fn hex_to_int_rejects_garbage() {
        let obs: Observation = serde_yaml::from_str(
            "policies:\n  - name: h\n    expression: hex_to_int(node.x) == 16\n    severity: info\n",
        )
        .unwrap();
        let p = CompiledPolicies::compile(&obs).unwrap();
        let eval = |x: serde_json::Value| {
            p.evaluate(&PolicyInput {
                node: json!({ "x": x }),
                ..PolicyInput::default()
            })
            .remove(0)
        };
        assert!(eval(json!("0x10")).firing);
        for bad in [json!("16"), json!("0x"), json!("0xzz"), json!(16)] {
            let r = eval(bad.clone());
            assert!(!r.firing && r.error.is_some(), "{bad}");
        }
    }

    #[test]
    fn syntax_errors_name_the_policy() {
        for bad in ["a ==", "a..b", "(a.b", "&&", "a.b == 1 &&"] {
            let obs = Observation {
                collectors: vec![],
                policies: vec![crate::Policy {
                    name: "broken".into(),
                    description: None,
                    expression: bad.into(),
                    for_s: 0,
                    severity: Severity::Info,
                    application_health: None,
                }],
            };
            let e = CompiledPolicies::compile(&obs).expect_err(bad);
            assert!(e.to_string().contains("policy `broken`"), "{e}");
        }
    }

    #[test]
    fn lint_reports_syntax_errors_with_file_and_policy() {
        let files: Vec<(String, String)> = crate::builtin_files()
            .iter()
            .map(|(p, c)| {
                let c = if *p == "ethereum-anvil/observation.yaml" {
                    c.replace(
                        "expression: hex_to_int(chain_id.result) != 31337",
                        "expression: hex_to_int(chain_id.result) !=",
                    )
                } else {
                    c.to_string()
                };
                (p.to_string(), c)
            })
            .collect();
        let report = ChainCatalog::lint_files(files.iter().map(|(p, c)| (p.as_str(), c.as_str())));
        assert_eq!(report.len(), 1, "{report}");
        let problem = &report.problems[0];
        assert_eq!(problem.file, "ethereum-anvil/observation.yaml");
        assert_eq!(problem.field, "policies[1].expression");
        assert!(problem.message.contains("wrong_chain_id"), "{problem}");
        assert!(problem.to_string().starts_with(
            "ethereum-anvil/observation.yaml: policies[1].expression: policy `wrong_chain_id`"
        ));
    }

    #[test]
    fn worst_application_health_among_long_firing_policies() {
        let r = |name: &str, firing: bool, h: Option<HealthOutcome>| PolicyResult {
            name: name.into(),
            firing,
            error: None,
            severity: Severity::Warning,
            application_health: h,
            for_s: 0,
        };
        let results = vec![
            r("a", true, Some(HealthOutcome::Degraded)),
            r("b", true, Some(HealthOutcome::Critical)),
            r("c", false, Some(HealthOutcome::Critical)),
            r("d", true, None),
        ];
        assert_eq!(
            application_health(&results, |_| true),
            Some(HealthOutcome::Critical)
        );
        assert_eq!(
            application_health(&results, |n| n != "b"),
            Some(HealthOutcome::Degraded)
        );
        assert_eq!(application_health(&results, |n| n == "d"), None);
        assert_eq!(application_health(&[], |_| true), None);
    }
}
