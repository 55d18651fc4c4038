//! Admission: the gate every call passes, over HTTP and WebSocket alike,
//! and the usage it leaves.
//!
//! 1. [`Edge::authenticate`]: the presented token is a valid key (else 401,
//!    not metered: an unverified key has no account to meter against).
//! 2. [`Edge::admit_connection`]: the chain is served and allowed, the
//!    client address and the browser origin are allowed, the plan exists.
//! 3. [`Edge::admit_call`], per call: method scope, then its CU price
//!    charged to the key × chain bucket ([`Edge::charge`]).
//! 4. Refusals are answered by the edge ([`Edge::refuse`] for a whole
//!    request); every answered call of a verified key is one usage event
//!    ([`Edge::record_usage`]).

use crate::jsonrpc;
use crate::keys::KeyCheck;
use crate::reply::reply;
use crate::state::Edge;
use axum::http::StatusCode;
use axum::response::Response;
use hood_domain::gcra::Decision;
use hood_domain::rpc::{Plan, RpcKey, UsageEvent, UsageStatus};
use hood_domain::Timestamp;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

fn now_ms() -> i64 {
    hood_clock::now().millis()
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

/// Why a whole request (or a whole WebSocket) of a verified key is refused:
/// the key may not use this chain from here, or the body is not a request.
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
    /// Records one answered call: a usage event for the meter, and the
    /// call counters. `http` is the HTTP status the call was answered with.
    pub(crate) fn record_usage(
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

    /// Refuses a whole request (or WebSocket) of a verified key: one usage
    /// event with `usage` as its status, and the refusal as the answer.
    pub(crate) fn refuse(
        &self,
        key: &RpcKey,
        chain: &str,
        started: Instant,
        refusal: &Refusal,
        usage: UsageStatus,
    ) -> Response {
        let o = Outcome {
            method: "-".to_owned(),
            cu: 0,
            status: usage,
            answer: None,
        };
        self.record_usage(key, chain, &o, refusal.status.as_u16(), started);
        reply(
            refusal.status,
            jsonrpc::error_response(&Value::Null, refusal.code, &refusal.message, None),
            None,
        )
    }

    /// Verifies a presented token; `Err` is the complete answer (401, or
    /// 503 while the store cannot be read). Nothing is metered here: an
    /// unverified key has no account to meter against.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Arc<RpcKey>, Response> {
        match self.keys.verify(token).await {
            Ok(KeyCheck::Valid(key)) => match self.stops.reason(key.org_id) {
                None => Ok(key),
                Some(reason) => Err({
                    self.metrics.rejected_key();
                    reply(
                        StatusCode::PAYMENT_REQUIRED,
                        jsonrpc::error_response(
                            &Value::Null,
                            jsonrpc::PAYMENT_REQUIRED,
                            &reason,
                            None,
                        ),
                        None,
                    )
                }),
            },
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

    /// The limit bucket of a key on a chain: `"{key_id}:{chain}"`.
    pub(crate) fn bucket(key: &RpcKey, chain: &str) -> String {
        format!("{}:{chain}", key.id)
    }

    /// Gives `cost` back to the bucket: calls admitted but never sent (no
    /// upstream) neither bill nor spend the key's limit.
    pub(crate) async fn refund(&self, bucket: &str, cost: u64, plan: &Plan) {
        if cost > 0 {
            self.limiter
                .refund(bucket, cost, &plan.quota(), now_ms())
                .await;
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
}
