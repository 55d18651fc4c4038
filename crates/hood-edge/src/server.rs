//! The HTTP side of the edge: `/{chain}/v1/{key}` and, with a configured
//! domain, `{chain}.{domain}/v1/{key}`. One request runs: key → chain, IP
//! and origin scope → parse → per call: method scope, price, limit →
//! forward the admitted calls → merge answers → one usage event per call.
//! A `GET` on the same paths upgrades to a WebSocket ([`crate::ws`]), which
//! passes the same gate once at connect and the same per-call admission
//! for every call it carries.
//!
//! The key travels in the path, so nothing here logs a path, a URI or the
//! token: spans carry the request id, the key id and the chain only.

use crate::jsonrpc::{self, Item, Request};
use crate::keys::{KeyCache, KeyCheck};
use crate::limit::Limiter;
use crate::meter::Meter;
use crate::upstream::{ForwardError, Pools};
use crate::ws::WsSettings;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use hood_domain::gcra::Decision;
use hood_domain::rpc::{CuPricing, Plan, PlanCatalog, RpcKey, UsageEvent, UsageStatus};
use hood_domain::Timestamp;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// What a request handler needs.
pub struct Edge {
    pub keys: Arc<KeyCache>,
    pub pools: Arc<Pools>,
    pub limiter: Arc<dyn Limiter>,
    pub meter: Meter,
    pub plans: PlanCatalog,
    pub pricing: CuPricing,
    /// Chains the edge serves (catalog + configured external upstreams).
    pub chains: BTreeSet<String>,
    pub domain: Option<String>,
    pub max_batch: usize,
    /// WebSocket sessions: limits, shutdown signal, open-session tracking.
    pub ws: WsSettings,
    pub cache: Arc<crate::cache::ResponseCache>,
    pub metrics: Arc<crate::metrics::EdgeMetrics>,
    /// Blocks behind the best head that count as final, per chain.
    pub finality_depth: HashMap<String, u64>,
}

/// Finality depth of a chain with none configured.
pub const DEFAULT_FINALITY_DEPTH: u64 = 64;

pub fn router(edge: Arc<Edge>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/{chain}/v1/{key}", post(by_path).get(crate::ws::by_path))
        .route("/v1/{key}", post(by_host).get(crate::ws::by_host))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/metrics", axum::routing::get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(edge)
}

/// Prometheus metrics, for scrapers on this machine only: the edge port is
/// public, its internals are not.
async fn metrics(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        edge.metrics.render(&edge.pools, edge.cache.stats()),
    )
        .into_response()
}

async fn by_path(
    State(edge): State<Arc<Edge>>,
    Path((chain, key)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    edge.handle(&chain, &key, peer, &headers, body).await
}

async fn by_host(
    State(edge): State<Arc<Edge>>,
    Path(key): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match edge.chain_from_host(&headers) {
        Some(chain) => edge.handle(&chain, &key, peer, &headers, body).await,
        None => no_chain_in_host(),
    }
}

/// The answer when host routing finds no chain.
pub(crate) fn no_chain_in_host() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        jsonrpc::error_response(
            &Value::Null,
            jsonrpc::INVALID_REQUEST,
            "no chain in the host name (expected {chain}.{domain})",
            None,
        ),
        None,
    )
}

pub(crate) fn reply(status: StatusCode, body: Value, retry_after_ms: Option<u64>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(ms) = retry_after_ms {
        let secs = ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    response
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Just enough of an upstream answer to meter it.
#[derive(serde::Deserialize)]
struct AnswerProbe<'a> {
    #[serde(borrow, default)]
    error: Option<&'a serde_json::value::RawValue>,
}

/// The outcome of one call, before the usage event is written.
pub(crate) struct Outcome {
    pub(crate) method: String,
    pub(crate) cu: u32,
    pub(crate) status: UsageStatus,
    /// The answer (None for a notification).
    pub(crate) answer: Option<Value>,
}

impl Outcome {
    /// An element of a request that is not a call.
    pub(crate) fn invalid(id: &Value, reason: &str) -> Self {
        Outcome {
            method: "-".to_owned(),
            cu: 0,
            status: UsageStatus::RpcError,
            answer: Some(jsonrpc::error_response(
                id,
                jsonrpc::INVALID_REQUEST,
                &format!("invalid request: {reason}"),
                None,
            )),
        }
    }
}

/// Why a verified key may not use this chain from here (a whole request,
/// or a whole WebSocket).
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// What the per-call admission decided.
pub(crate) enum Admission {
    /// Forward it upstream.
    Forward(jsonrpc::Call),
    /// Answered by the edge: `Denied` (method scope) or `RateLimited`.
    Refused(Outcome),
}

impl Edge {
    pub(crate) fn usage(
        &self,
        key: &RpcKey,
        chain: &str,
        o: &Outcome,
        http: u16,
        started: Instant,
    ) {
        // Only chains the edge serves become label values.
        let label = if self.chains.contains(chain) {
            chain
        } else {
            "-"
        };
        self.metrics.call(label, o.status, o.cu);
        self.meter.record(UsageEvent {
            request_id: uuid::Uuid::now_v7().to_string(),
            org_id: key.org_id,
            key_id: key.id,
            chain: chain.to_owned(),
            method: o.method.clone(),
            compute_units: o.cu,
            status: o.status,
            http_status: http,
            latency_us: started.elapsed().as_micros() as u64,
            at: Timestamp::from_millis(now_ms()),
        });
    }

    /// Refuses a whole request of a verified key (one usage event).
    #[allow(clippy::too_many_arguments)] // one call site per refusal reason; a struct would only rename them
    pub(crate) fn refuse(
        &self,
        key: &RpcKey,
        chain: &str,
        started: Instant,
        status: StatusCode,
        code: i64,
        message: &str,
        usage: UsageStatus,
    ) -> Response {
        let o = Outcome {
            method: "-".to_owned(),
            cu: 0,
            status: usage,
            answer: None,
        };
        self.usage(key, chain, &o, status.as_u16(), started);
        reply(
            status,
            jsonrpc::error_response(&Value::Null, code, message, None),
            None,
        )
    }

    /// The chain named by the `Host` header (host routing).
    pub(crate) fn chain_from_host(&self, headers: &HeaderMap) -> Option<String> {
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let host = host.split(':').next().unwrap_or_default();
        let chain = match &self.domain {
            Some(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|c| c.strip_suffix('.')),
            None => host.split('.').next(),
        };
        chain.filter(|c| !c.is_empty()).map(str::to_owned)
    }

    /// Verifies a presented token; `Err` is the complete answer (401, or
    /// 503 while the store cannot be read). Nothing is metered here: an
    /// unverified key has no account to meter against.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Arc<RpcKey>, Response> {
        match self.keys.verify(token).await {
            Ok(KeyCheck::Valid(key)) => Ok(key),
            Ok(KeyCheck::Unknown) => Err({
                self.metrics.rejected_key();
                reply(
                    StatusCode::UNAUTHORIZED,
                    jsonrpc::error_response(
                        &Value::Null,
                        jsonrpc::UNAUTHORIZED,
                        "invalid API key",
                        None,
                    ),
                    None,
                )
            }),
            Ok(KeyCheck::Revoked) => Err({
                self.metrics.rejected_key();
                reply(
                    StatusCode::UNAUTHORIZED,
                    jsonrpc::error_response(
                        &Value::Null,
                        jsonrpc::UNAUTHORIZED,
                        "API key revoked",
                        None,
                    ),
                    None,
                )
            }),
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                Err(reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    jsonrpc::error_response(
                        &Value::Null,
                        jsonrpc::RESOURCE_UNAVAILABLE,
                        "key verification unavailable, retry",
                        None,
                    ),
                    Some(1_000),
                ))
            }
        }
    }

    /// The gate of a verified key before any call: the chain is served and
    /// allowed, the client address and the browser origin are allowed, and
    /// the key's plan exists. Returns the plan.
    pub(crate) fn admit_connection(
        &self,
        key: &RpcKey,
        chain: &str,
        peer: IpAddr,
        origin: Option<&str>,
    ) -> Result<&Plan, Refusal> {
        let refuse = |status: StatusCode, message: String| Refusal {
            status,
            code: jsonrpc::UNAUTHORIZED,
            message,
        };
        if !self.chains.contains(chain) {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                code: jsonrpc::INVALID_REQUEST,
                message: format!("unknown chain `{chain}`"),
            });
        }
        if !key.scope.allows_chain(chain) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("chain `{chain}` is not allowed for this key"),
            ));
        }
        if !key.scope.allows_ip(peer) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "client address is not allowed for this key".to_owned(),
            ));
        }
        if !key.scope.allows_origin(origin) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "origin is not allowed for this key".to_owned(),
            ));
        }
        let Some(plan) = self.plans.get(&key.plan) else {
            tracing::warn!(plan = %key.plan, "key refers to a plan that is not configured");
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("plan `{}` is not available", key.plan),
            ));
        };
        Ok(plan)
    }

    /// Charges `cost` compute units to `bucket` under the plan's quota.
    pub(crate) async fn charge(&self, bucket: &str, cost: u64, plan: &Plan) -> Decision {
        match self
            .limiter
            .acquire(bucket, cost, &plan.quota(), now_ms())
            .await
        {
            Ok(d) => d,
            Err(e) => {
                // A shared limiter that is down must not take the
                // edge down with it: admit, and say so loudly.
                tracing::warn!(error = %e, "rate limiter unavailable; admitting");
                Decision::Allow {
                    tat_ns: 0,
                    remaining: 0,
                }
            }
        }
    }

    /// The admission of one call: method scope, then its price against the
    /// key × chain bucket (`bucket` = `"{key_id}:{chain}"`). `retry_after`
    /// accumulates the longest wait of the calls refused so far in the same
    /// request (it is echoed in each refusal's data).
    pub(crate) async fn admit_call(
        &self,
        key: &RpcKey,
        chain: &str,
        plan: &Plan,
        bucket: &str,
        call: jsonrpc::Call,
        retry_after: &mut Option<u64>,
    ) -> Admission {
        let answer_id = call.id.clone().unwrap_or(Value::Null);
        if !key.scope.allows_method(&call.method) {
            return Admission::Refused(Outcome {
                answer: call.id.as_ref().map(|_| {
                    jsonrpc::error_response(
                        &answer_id,
                        jsonrpc::METHOD_NOT_ALLOWED,
                        &format!("method `{}` is not allowed for this key", call.method),
                        None,
                    )
                }),
                method: call.method,
                cu: 0,
                status: UsageStatus::Denied,
            });
        }
        let cost = self.pricing.price(&call.method);
        let decision = self.charge(bucket, u64::from(cost), plan).await;
        let refusal = match decision {
            Decision::Allow { .. } => None,
            Decision::Deny { retry_after_ms } => {
                *retry_after = Some(retry_after.unwrap_or(0).max(retry_after_ms));
                Some(format!(
                    "rate limit exceeded: plan `{}` allows {} compute units per minute per key on `{chain}`; `{}` costs {cost}; retry in {retry_after_ms} ms",
                    plan.name, plan.cu_per_minute, call.method
                ))
            }
            Decision::TooLarge => Some(format!(
                "`{}` costs {cost} compute units, more than plan `{}` admits at once ({})",
                call.method, plan.name, plan.burst_cu
            )),
        };
        let Some(message) = refusal else {
            return Admission::Forward(call);
        };
        Admission::Refused(Outcome {
            answer: call.id.as_ref().map(|_| {
                jsonrpc::error_response(
                    &answer_id,
                    jsonrpc::LIMIT_EXCEEDED,
                    &message,
                    Some(json!({
                        "limit": "plan",
                        "plan": plan.name,
                        "chain": chain,
                        "cu_per_minute": plan.cu_per_minute,
                        "cost": cost,
                        "retry_after_ms": retry_after,
                    })),
                )
            }),
            method: call.method,
            cu: 0,
            status: UsageStatus::RateLimited,
        })
    }

    pub async fn handle(
        &self,
        chain: &str,
        token: &str,
        peer: SocketAddr,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let started = Instant::now();
        let key = match self.authenticate(token).await {
            Ok(key) => key,
            Err(response) => return response,
        };
        let span = tracing::debug_span!("rpc", key_id = %key.id, chain = %chain);
        let _enter = span.enter();
        let origin = headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        let plan = match self.admit_connection(&key, chain, peer.ip(), origin) {
            Ok(plan) => plan,
            Err(r) => {
                return self.refuse(
                    &key,
                    chain,
                    started,
                    r.status,
                    r.code,
                    &r.message,
                    UsageStatus::Denied,
                )
            }
        };
        let request = match jsonrpc::parse(&body, self.max_batch) {
            Ok(r) => r,
            Err(e) => {
                return self.refuse(
                    &key,
                    chain,
                    started,
                    StatusCode::BAD_REQUEST,
                    e.code(),
                    &e.to_string(),
                    UsageStatus::RpcError,
                )
            }
        };
        let (items, batch) = match request {
            Request::Single(item) => (vec![item], false),
            Request::Batch(items) => (items, true),
        };
        let bucket = format!("{}:{chain}", key.id);
        let depth = self
            .finality_depth
            .get(chain)
            .copied()
            .unwrap_or(DEFAULT_FINALITY_DEPTH);
        let finalized = self
            .pools
            .chain(chain)
            .map(|p| p.best_head())
            .filter(|h| *h > 0)
            .map(|h| h.saturating_sub(depth));
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        type CacheKey = (String, String, String);
        let mut forward: Vec<(usize, jsonrpc::Call, Option<CacheKey>)> = Vec::new();
        let mut retry_after: Option<u64> = None;
        let mut limited = 0usize;
        let mut denied = 0usize;
        for (i, item) in items.into_iter().enumerate() {
            let call = match item {
                Item::Invalid { id, reason } => {
                    outcomes.push(Some(Outcome::invalid(&id, &reason)));
                    continue;
                }
                Item::Call(call) => call,
            };
            match self
                .admit_call(&key, chain, plan, &bucket, call, &mut retry_after)
                .await
            {
                Admission::Forward(call) => {
                    let cache_key = self.cache.key(chain, &call.method, &call.params, finalized);
                    if let Some(result) = cache_key.as_ref().and_then(|k| self.cache.get(k)) {
                        outcomes.push(Some(Outcome {
                            answer: call
                                .id
                                .as_ref()
                                .map(|id| jsonrpc::result_response(id, result)),
                            cu: self.pricing.price(&call.method),
                            method: call.method,
                            status: UsageStatus::Ok,
                        }));
                        continue;
                    }
                    outcomes.push(None);
                    forward.push((i, call, cache_key));
                }
                Admission::Refused(outcome) => {
                    if outcome.status == UsageStatus::RateLimited {
                        limited += 1;
                    } else {
                        denied += 1;
                    }
                    outcomes.push(Some(outcome));
                }
            }
        }

        // Forward what was admitted, as one body.
        let mut upstream_status = StatusCode::OK;
        if !forward.is_empty() {
            let idempotent = !forward.iter().any(|(_, c, _)| {
                c.method == "eth_sendRawTransaction" || c.method == "eth_sendTransaction"
            });
            let out_body = if !batch {
                body.clone()
            } else {
                let calls: Vec<&Value> = forward.iter().map(|(_, c, _)| &c.raw).collect();
                Bytes::from(serde_json::to_vec(&calls).unwrap_or_default())
            };
            let forwarded = self.pools.forward(chain, out_body, idempotent).await;
            // The common case, a single plain call: pass the upstream's bytes
            // through untouched, reading only whether it is an error.
            if let (false, [(_, call, None)], Ok(bytes)) = (batch, forward.as_slice(), &forwarded) {
                if call.id.is_some() {
                    if let Ok(probe) = serde_json::from_slice::<AnswerProbe>(bytes) {
                        let status = if probe.error.is_some_and(|e| e.get() != "null") {
                            UsageStatus::RpcError
                        } else {
                            UsageStatus::Ok
                        };
                        let outcome = Outcome {
                            method: call.method.clone(),
                            cu: self.pricing.price(&call.method),
                            status,
                            answer: None,
                        };
                        self.usage(&key, chain, &outcome, 200, started);
                        self.metrics
                            .answered(chain, started.elapsed().as_secs_f64());
                        return (
                            [(http::header::CONTENT_TYPE, "application/json")],
                            bytes.clone(),
                        )
                            .into_response();
                    }
                }
            }
            let answers = match forwarded {
                Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Array(list)) => Ok(list),
                    Ok(one) => Ok(vec![one]),
                    Err(_) => Err("upstream answered with invalid JSON".to_owned()),
                },
                Err(ForwardError::NoUpstream(_)) => {
                    upstream_status = StatusCode::SERVICE_UNAVAILABLE;
                    Err(format!("no healthy upstream for `{chain}` right now"))
                }
                Err(ForwardError::Failed(why)) => {
                    upstream_status = StatusCode::BAD_GATEWAY;
                    tracing::warn!(error = %why, "upstream failed");
                    Err("upstream failed".to_owned())
                }
            };
            match answers {
                Ok(list) => {
                    let mut by_id: HashMap<String, Value> = HashMap::with_capacity(list.len());
                    let mut unnamed = Vec::new();
                    for a in list {
                        match a.get("id") {
                            Some(id) if !id.is_null() => {
                                by_id.insert(id.to_string(), a);
                            }
                            _ => unnamed.push(a),
                        }
                    }
                    for (i, call, cache_key) in forward {
                        let answer = call
                            .id
                            .as_ref()
                            .and_then(|id| by_id.remove(&id.to_string()).or_else(|| unnamed.pop()));
                        let status = match &answer {
                            Some(a) if jsonrpc::is_error_response(a) => UsageStatus::RpcError,
                            Some(_) => UsageStatus::Ok,
                            None if call.id.is_none() => UsageStatus::Ok,
                            None => UsageStatus::UpstreamError,
                        };
                        let answer = match (answer, &call.id) {
                            (Some(a), _) => Some(a),
                            (None, Some(id)) => Some(jsonrpc::error_response(
                                id,
                                jsonrpc::UPSTREAM_ERROR,
                                "the upstream gave no answer to this call",
                                None,
                            )),
                            (None, None) => None,
                        };
                        if let (Some(k), Some(a), UsageStatus::Ok) = (cache_key, &answer, status) {
                            self.cache.put(k, a);
                        }
                        outcomes[i] = Some(Outcome {
                            cu: self.pricing.price(&call.method),
                            method: call.method,
                            status,
                            answer,
                        });
                    }
                }
                Err(message) => {
                    let code = if upstream_status == StatusCode::SERVICE_UNAVAILABLE {
                        jsonrpc::RESOURCE_UNAVAILABLE
                    } else {
                        jsonrpc::UPSTREAM_ERROR
                    };
                    for (i, call, _) in forward {
                        outcomes[i] = Some(Outcome {
                            answer: call
                                .id
                                .as_ref()
                                .map(|id| jsonrpc::error_response(id, code, &message, None)),
                            method: call.method,
                            cu: 0,
                            status: UsageStatus::UpstreamError,
                        });
                    }
                }
            }
        }

        let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
        let calls = outcomes.len();
        let http_status = if !batch {
            match outcomes.first().map(|o| o.status) {
                Some(UsageStatus::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
                Some(UsageStatus::Denied) => StatusCode::FORBIDDEN,
                Some(UsageStatus::UpstreamError) => upstream_status,
                Some(UsageStatus::RpcError) if outcomes[0].method == "-" => StatusCode::BAD_REQUEST,
                _ => StatusCode::OK,
            }
        } else if limited == calls && calls > 0 {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            let _ = denied;
            StatusCode::OK
        };
        for o in &outcomes {
            self.usage(&key, chain, o, http_status.as_u16(), started);
        }
        let answers: Vec<Value> = outcomes.into_iter().filter_map(|o| o.answer).collect();
        let retry = (http_status == StatusCode::TOO_MANY_REQUESTS)
            .then_some(retry_after)
            .flatten();
        tracing::debug!(calls, status = http_status.as_u16(), "answered");
        self.metrics
            .answered(chain, started.elapsed().as_secs_f64());
        match (batch, answers.len()) {
            (_, 0) => StatusCode::NO_CONTENT.into_response(),
            (false, _) => reply(
                http_status,
                answers.into_iter().next().unwrap_or(Value::Null),
                retry,
            ),
            (true, _) => reply(http_status, Value::Array(answers), retry),
        }
    }
}
