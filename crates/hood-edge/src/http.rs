//! The HTTP request path: `POST /{chain}/v1/{key}` and, with a configured
//! domain, `{chain}.{domain}/v1/{key}`. A request runs through stages, one
//! function each:
//!
//! 1. **gate** ([`crate::admission`]): the key, then its chain, client
//!    address, origin and plan;
//! 2. [`parse`] the body: one call or a batch, each element a call or why
//!    it is not one;
//! 3. [`admit_calls`]: per call, method scope and CU price against the
//!    limit ([`Edge::admit_call`]), the same admission as WebSockets;
//! 4. [`answer_from_cache`]: finalized calls are answered from the cache;
//! 5. [`forward`] what is left to the chain's pool, as one body (a single
//!    call's answer then goes back untouched: [`pass_through`]);
//! 6. [`merge`] the upstream's answers into the request's order;
//! 7. [`respond`]: one usage event per call, one HTTP answer.
//!
//! The key travels in the path, so nothing here logs a path, a URI or the
//! token: spans carry the key id and the chain only.

use crate::admission::{Admission, Outcome, Refusal};
use crate::cache::CacheKey;
use crate::jsonrpc::{self, Call, Item};
use crate::reply::{no_chain_in_host, reply};
use crate::state::Edge;
use crate::upstream::ForwardError;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hood_domain::rpc::{self, Plan, RpcKey, UsageStatus};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub(crate) async fn by_path(
    State(edge): State<Arc<Edge>>,
    Path((chain, key)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&edge, &chain, &key, peer, &headers, body).await
}

pub(crate) async fn by_host(
    State(edge): State<Arc<Edge>>,
    Path(key): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match edge.chain_from_host(&headers) {
        Some(chain) => handle(&edge, &chain, &key, peer, &headers, body).await,
        None => no_chain_in_host(),
    }
}

/// One element of the request on its way through the stages.
enum Slot {
    /// Answered: not a call, refused, from the cache, or merged.
    Done(Outcome),
    /// Admitted, waiting for the upstream; `cache_key` when its answer may
    /// be kept.
    Pending {
        call: Call,
        cache_key: Option<CacheKey>,
    },
}

impl Slot {
    fn pending_call(&self) -> Option<&Call> {
        match self {
            Slot::Pending { call, .. } => Some(call),
            Slot::Done(_) => None,
        }
    }
}

/// What every stage after the gate reads: who asks, on which chain, since
/// when, and whether the answer is an array.
struct Request<'a> {
    edge: &'a Edge,
    key: &'a RpcKey,
    chain: &'a str,
    started: Instant,
    batch: bool,
}

/// The admitted request: its elements, and the longest wait of the calls
/// refused by the limit.
struct Admitted {
    slots: Vec<Slot>,
    retry_after_ms: Option<u64>,
}

async fn handle(
    edge: &Edge,
    chain: &str,
    token: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let key = match edge.authenticate(token).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let span = tracing::debug_span!("rpc", key_id = %key.id, chain = %chain);
    let _enter = span.enter();
    let origin = headers
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let plan = match edge.admit_connection(&key, chain, peer.ip(), origin) {
        Ok(plan) => plan,
        Err(refusal) => return edge.refuse(&key, chain, started, &refusal, UsageStatus::Denied),
    };
    let (items, batch) = match parse(edge, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return edge.refuse(&key, chain, started, &refusal, UsageStatus::RpcError),
    };
    let request = Request {
        edge,
        key: &key,
        chain,
        started,
        batch,
    };
    let Admitted {
        mut slots,
        retry_after_ms,
    } = admit_calls(&request, plan, items).await;
    answer_from_cache(&request, &mut slots);
    let mut upstream_status = StatusCode::OK;
    if slots.iter().any(|s| s.pending_call().is_some()) {
        let forwarded = forward(&request, &body, &slots).await;
        if let Err(ForwardError::NoUpstream(_)) = &forwarded {
            refund_pending(&request, plan, &slots).await;
        }
        if let Some(response) = pass_through(&request, &slots, &forwarded) {
            return response;
        }
        upstream_status = merge(&request, forwarded, &mut slots);
    }
    respond(&request, slots, upstream_status, retry_after_ms)
}

/// Stage 2: the body's elements, and whether they came as a batch. A body
/// that is no request at all refuses the whole request (400).
fn parse(edge: &Edge, body: &[u8]) -> Result<(Vec<Item>, bool), Refusal> {
    match jsonrpc::parse(body, edge.max_batch) {
        Ok(request) => Ok(request.into_items()),
        Err(e) => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: e.code(),
            message: e.to_string(),
        }),
    }
}

/// Stage 3: each element is answered at once (not a call, method not
/// allowed, over the limit) or admitted, in order.
async fn admit_calls(request: &Request<'_>, plan: &Plan, items: Vec<Item>) -> Admitted {
    let Request {
        edge, key, chain, ..
    } = *request;
    let bucket = Edge::bucket(key, chain);
    let mut retry_after_ms = None;
    let mut slots = Vec::with_capacity(items.len());
    for item in items {
        let slot = match item {
            Item::Invalid { id, reason } => Slot::Done(Outcome::invalid(&id, &reason)),
            Item::Call(call) => match edge
                .admit_call(key, chain, plan, &bucket, call, &mut retry_after_ms)
                .await
            {
                Admission::Forward(call) => Slot::Pending {
                    call,
                    cache_key: None,
                },
                Admission::Refused(outcome) => Slot::Done(outcome),
            },
        };
        slots.push(slot);
    }
    Admitted {
        slots,
        retry_after_ms,
    }
}

/// Stage 4: admitted calls whose answer is final and cached are answered
/// from the cache; the others that may be cached get their key, to keep
/// the upstream's answer.
fn answer_from_cache(request: &Request<'_>, slots: &mut [Slot]) {
    let Request { edge, chain, .. } = *request;
    if !slots.iter().any(|s| s.pending_call().is_some()) {
        return;
    }
    let finalized = edge.finalized_height(chain);
    for slot in slots.iter_mut() {
        let Slot::Pending { call, cache_key } = slot else {
            continue;
        };
        *cache_key = edge.cache.key(chain, &call.method, &call.params, finalized);
        let Some(result) = cache_key.as_ref().and_then(|k| edge.cache.get(k)) else {
            continue;
        };
        let method = std::mem::take(&mut call.method);
        let answer = call
            .id
            .as_ref()
            .map(|id| jsonrpc::result_response(id, result));
        *slot = Slot::Done(Outcome {
            cu: edge.pricing.price(&method),
            method,
            status: UsageStatus::Ok,
            answer,
        });
    }
}

/// Stage 5: the pending calls go to the chain's pool as one body: a single
/// call as received, a batch rebuilt from the pending calls only. The pool
/// may send it again elsewhere only if the domain's retry rule allows it
/// for every call in it.
async fn forward(
    request: &Request<'_>,
    body: &Bytes,
    slots: &[Slot],
) -> Result<Bytes, ForwardError> {
    let pending = || slots.iter().filter_map(Slot::pending_call);
    let may_resend = rpc::may_resend_all(pending().map(|c| c.method.as_str()));
    let out_body = if request.batch {
        let calls: Vec<&Value> = pending().map(|c| &c.raw).collect();
        Bytes::from(serde_json::to_vec(&calls).unwrap_or_default())
    } else {
        body.clone()
    };
    request
        .edge
        .pools
        .forward(request.chain, out_body, may_resend)
        .await
}

/// The limit budget the pending calls took goes back: they reached no
/// upstream (and are billed nothing, see [`fail_pending`]).
async fn refund_pending(request: &Request<'_>, plan: &Plan, slots: &[Slot]) {
    let Request {
        edge, key, chain, ..
    } = *request;
    let cost: u64 = slots
        .iter()
        .filter_map(Slot::pending_call)
        .map(|c| u64::from(edge.pricing.price(&c.method)))
        .sum();
    edge.refund(&Edge::bucket(key, chain), cost, plan).await;
}

/// Just enough of an upstream answer to meter it.
#[derive(serde::Deserialize)]
struct AnswerProbe<'a> {
    #[serde(borrow, default)]
    error: Option<&'a serde_json::value::RawValue>,
}

/// Stage 5, the common case: a single plain call (not a notification, not
/// cacheable) that the upstream answered. Its bytes go back untouched; only
/// whether it is an error is read, to meter it.
fn pass_through(
    request: &Request<'_>,
    slots: &[Slot],
    forwarded: &Result<Bytes, ForwardError>,
) -> Option<Response> {
    let Request {
        edge,
        key,
        chain,
        started,
        batch,
    } = *request;
    let (
        false,
        [Slot::Pending {
            call,
            cache_key: None,
        }],
        Ok(bytes),
    ) = (batch, slots, forwarded)
    else {
        return None;
    };
    call.id.as_ref()?;
    let probe = serde_json::from_slice::<AnswerProbe>(bytes).ok()?;
    let status = if probe.error.is_some_and(|e| e.get() != "null") {
        UsageStatus::RpcError
    } else {
        UsageStatus::Ok
    };
    let outcome = Outcome {
        method: call.method.clone(),
        cu: edge.pricing.price(&call.method),
        status,
        answer: None,
    };
    edge.record_usage(key, chain, &outcome, 200, started);
    edge.metrics
        .answered(chain, started.elapsed().as_secs_f64());
    Some(
        (
            [(http::header::CONTENT_TYPE, "application/json")],
            bytes.clone(),
        )
            .into_response(),
    )
}

/// Why the upstream's answer is of no use, for every call sent.
struct UpstreamFailure {
    /// The HTTP status of a single call that failed this way.
    status: StatusCode,
    code: i64,
    message: String,
}

/// Stage 6: every pending call gets its answer from what the upstream sent
/// (or the upstream's failure). Returns the HTTP status an upstream failure
/// gives a single call (200 when the upstream answered).
fn merge(
    request: &Request<'_>,
    forwarded: Result<Bytes, ForwardError>,
    slots: &mut [Slot],
) -> StatusCode {
    match read_answers(request.chain, forwarded) {
        Ok(answers) => {
            match_answers(request.edge, answers, slots);
            StatusCode::OK
        }
        Err(failure) => {
            fail_pending(&failure, slots);
            failure.status
        }
    }
}

/// The upstream's answers as a list (one answer or a batch's).
fn read_answers(
    chain: &str,
    forwarded: Result<Bytes, ForwardError>,
) -> Result<Vec<Value>, UpstreamFailure> {
    match forwarded {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(list)) => Ok(list),
            Ok(one) => Ok(vec![one]),
            Err(_) => Err(UpstreamFailure {
                status: StatusCode::OK,
                code: jsonrpc::UPSTREAM_ERROR,
                message: "upstream answered with invalid JSON".to_owned(),
            }),
        },
        Err(ForwardError::NoUpstream(_)) => Err(UpstreamFailure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: jsonrpc::RESOURCE_UNAVAILABLE,
            message: format!("no healthy upstream for `{chain}` right now"),
        }),
        Err(ForwardError::Failed(why)) => {
            tracing::warn!(error = %why, "upstream failed");
            Err(UpstreamFailure {
                status: StatusCode::BAD_GATEWAY,
                code: jsonrpc::UPSTREAM_ERROR,
                message: "upstream failed".to_owned(),
            })
        }
    }
}

/// The upstream's answers, to be matched to the calls sent.
struct Answers {
    by_id: HashMap<String, Value>,
    /// Answers without a usable id, handed to calls left without one.
    unnamed: Vec<Value>,
}

impl Answers {
    fn new(list: Vec<Value>) -> Self {
        let mut by_id = HashMap::with_capacity(list.len());
        let mut unnamed = Vec::new();
        for a in list {
            match a.get("id") {
                Some(id) if !id.is_null() => {
                    by_id.insert(id.to_string(), a);
                }
                _ => unnamed.push(a),
            }
        }
        Self { by_id, unnamed }
    }

    /// The answer to `call` (`None` for a notification) and how the call
    /// ended. A call the upstream left unanswered gets an upstream error.
    fn take(&mut self, call: &Call) -> (Option<Value>, UsageStatus) {
        let Some(id) = &call.id else {
            return (None, UsageStatus::Ok);
        };
        match self
            .by_id
            .remove(&id.to_string())
            .or_else(|| self.unnamed.pop())
        {
            Some(a) if jsonrpc::is_error_response(&a) => (Some(a), UsageStatus::RpcError),
            Some(a) => (Some(a), UsageStatus::Ok),
            None => (
                Some(jsonrpc::error_response(
                    id,
                    jsonrpc::UPSTREAM_ERROR,
                    "the upstream gave no answer to this call",
                    None,
                )),
                UsageStatus::UpstreamError,
            ),
        }
    }
}

/// Every pending call takes its answer; successful answers of cacheable
/// calls are kept.
fn match_answers(edge: &Edge, answers: Vec<Value>, slots: &mut [Slot]) {
    let mut answers = Answers::new(answers);
    for slot in slots.iter_mut() {
        let Slot::Pending { call, cache_key } = slot else {
            continue;
        };
        let (answer, status) = answers.take(call);
        if let (Some(k), Some(a), UsageStatus::Ok) = (cache_key.take(), &answer, status) {
            edge.cache.put(k, a);
        }
        let method = std::mem::take(&mut call.method);
        *slot = Slot::Done(Outcome {
            cu: edge.pricing.price(&method),
            method,
            status,
            answer,
        });
    }
}

/// Every pending call is answered with the upstream's failure (0 CU).
fn fail_pending(failure: &UpstreamFailure, slots: &mut [Slot]) {
    for slot in slots.iter_mut() {
        let Slot::Pending { call, .. } = slot else {
            continue;
        };
        let answer = call
            .id
            .as_ref()
            .map(|id| jsonrpc::error_response(id, failure.code, &failure.message, None));
        *slot = Slot::Done(Outcome {
            method: std::mem::take(&mut call.method),
            cu: 0,
            status: UsageStatus::UpstreamError,
            answer,
        });
    }
}

/// The HTTP status of a whole request. A single call's follows its
/// outcome; a batch is 200 unless every call in it was refused by the
/// limit (429).
fn http_status(batch: bool, outcomes: &[Outcome], upstream_status: StatusCode) -> StatusCode {
    if batch {
        let all_limited = !outcomes.is_empty()
            && outcomes
                .iter()
                .all(|o| o.status == UsageStatus::RateLimited);
        return if all_limited {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::OK
        };
    }
    match outcomes.first() {
        Some(o) => match o.status {
            UsageStatus::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            UsageStatus::Denied => StatusCode::FORBIDDEN,
            UsageStatus::UpstreamError => upstream_status,
            UsageStatus::RpcError if o.method == "-" => StatusCode::BAD_REQUEST,
            UsageStatus::RpcError | UsageStatus::Ok => StatusCode::OK,
        },
        None => StatusCode::OK,
    }
}

/// Stage 7: one usage event per call, all with the request's HTTP status,
/// then the answers (an array for a batch; nothing to say is 204).
fn respond(
    request: &Request<'_>,
    slots: Vec<Slot>,
    upstream_status: StatusCode,
    retry_after_ms: Option<u64>,
) -> Response {
    let Request {
        edge,
        key,
        chain,
        started,
        batch,
    } = *request;
    let outcomes: Vec<Outcome> = slots
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Done(outcome) => Some(outcome),
            Slot::Pending { .. } => None,
        })
        .collect();
    let status = http_status(batch, &outcomes, upstream_status);
    for o in &outcomes {
        edge.record_usage(key, chain, o, status.as_u16(), started);
    }
    let calls = outcomes.len();
    let answers: Vec<Value> = outcomes.into_iter().filter_map(|o| o.answer).collect();
    let retry = (status == StatusCode::TOO_MANY_REQUESTS)
        .then_some(retry_after_ms)
        .flatten();
    tracing::debug!(calls, status = status.as_u16(), "answered");
    edge.metrics
        .answered(chain, started.elapsed().as_secs_f64());
    match (batch, answers.len()) {
        (_, 0) => StatusCode::NO_CONTENT.into_response(),
        (false, _) => reply(
            status,
            answers.into_iter().next().unwrap_or(Value::Null),
            retry,
        ),
        (true, _) => reply(status, Value::Array(answers), retry),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn outcome(method: &str, status: UsageStatus) -> Outcome {
        Outcome {
            method: method.into(),
            cu: 0,
            status,
            answer: None,
        }
    }

    #[test]
    fn a_single_call_answers_with_the_status_of_its_outcome() {
        let single =
            |method, status, upstream| http_status(false, &[outcome(method, status)], upstream);
        let ok = StatusCode::OK;
        assert_eq!(single("eth_call", UsageStatus::Ok, ok), StatusCode::OK);
        assert_eq!(
            single("eth_call", UsageStatus::RpcError, ok),
            StatusCode::OK,
            "a node's JSON-RPC error is still a 200"
        );
        assert_eq!(
            single("-", UsageStatus::RpcError, ok),
            StatusCode::BAD_REQUEST,
            "not a call at all"
        );
        assert_eq!(single("x", UsageStatus::Denied, ok), StatusCode::FORBIDDEN);
        assert_eq!(
            single("x", UsageStatus::RateLimited, ok),
            StatusCode::TOO_MANY_REQUESTS
        );
        for upstream in [
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::OK,
        ] {
            assert_eq!(single("x", UsageStatus::UpstreamError, upstream), upstream);
        }
    }

    #[test]
    fn a_batch_is_429_only_when_the_limit_refused_every_call() {
        let limited = || outcome("eth_call", UsageStatus::RateLimited);
        let ok = StatusCode::OK;
        assert_eq!(
            http_status(true, &[limited(), limited()], ok),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(true, &[limited(), outcome("x", UsageStatus::Ok)], ok),
            StatusCode::OK
        );
        assert_eq!(
            http_status(true, &[limited(), outcome("x", UsageStatus::Denied)], ok),
            StatusCode::OK
        );
        assert_eq!(
            http_status(
                true,
                &[outcome("x", UsageStatus::UpstreamError)],
                StatusCode::BAD_GATEWAY
            ),
            StatusCode::OK,
            "a batch carries upstream failures in its answers"
        );
        assert_eq!(http_status(true, &[], ok), StatusCode::OK);
    }

    fn call(id: Option<Value>) -> Call {
        Call {
            raw: json!({"jsonrpc": "2.0", "id": id, "method": "eth_call"}),
            id,
            method: "eth_call".into(),
            params: json!([]),
        }
    }

    #[test]
    fn answers_are_matched_by_id_whatever_their_order() {
        let mut answers = Answers::new(vec![
            json!({"jsonrpc": "2.0", "id": "b", "result": "0x2"}),
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "reverted"}}),
            json!({"jsonrpc": "2.0", "id": "a", "result": "0x1"}),
        ]);
        let (a, status) = answers.take(&call(Some(json!("a"))));
        assert_eq!(a.unwrap()["result"], "0x1");
        assert_eq!(status, UsageStatus::Ok);
        let (one, status) = answers.take(&call(Some(json!(1))));
        assert_eq!(one.unwrap()["error"]["code"], 3);
        assert_eq!(status, UsageStatus::RpcError);
        let (b, status) = answers.take(&call(Some(json!("b"))));
        assert_eq!(b.unwrap()["result"], "0x2");
        assert_eq!(status, UsageStatus::Ok);
        // Each answer is used once: a repeated id is left unanswered.
        let (again, status) = answers.take(&call(Some(json!("a"))));
        assert_eq!(again.unwrap()["error"]["code"], jsonrpc::UPSTREAM_ERROR);
        assert_eq!(status, UsageStatus::UpstreamError);
    }

    #[test]
    fn unnamed_answers_fill_calls_left_without_one() {
        let mut answers = Answers::new(vec![
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "x"}}),
            json!({"jsonrpc": "2.0", "id": 7, "result": "0x7"}),
        ]);
        // A notification takes nothing and expects nothing.
        assert_eq!(answers.take(&call(None)), (None, UsageStatus::Ok));
        let (seven, _) = answers.take(&call(Some(json!(7))));
        assert_eq!(seven.unwrap()["result"], "0x7");
        let (filled, status) = answers.take(&call(Some(json!(8))));
        assert_eq!(filled.unwrap()["error"]["code"], -32600);
        assert_eq!(status, UsageStatus::RpcError);
        let (none_left, status) = answers.take(&call(Some(json!(9))));
        let none_left = none_left.unwrap();
        assert_eq!(none_left["id"], 9, "the error names the call");
        assert_eq!(none_left["error"]["code"], jsonrpc::UPSTREAM_ERROR);
        assert_eq!(status, UsageStatus::UpstreamError);
    }

    #[test]
    fn upstream_failures_become_per_call_errors() {
        let no_upstream =
            read_answers("ethereum", Err(ForwardError::NoUpstream("ethereum".into())));
        let failure = no_upstream.err().unwrap();
        assert_eq!(failure.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failure.code, jsonrpc::RESOURCE_UNAVAILABLE);
        assert!(failure.message.contains("`ethereum`"));
        let failed = read_answers(
            "ethereum",
            Err(ForwardError::Failed(
                "http://10.0.0.1:8545: timed out".into(),
            )),
        );
        let failure = failed.err().unwrap();
        assert_eq!(failure.status, StatusCode::BAD_GATEWAY);
        assert_eq!(failure.message, "upstream failed", "no upstream named");
        let garbage = read_answers("ethereum", Ok(Bytes::from_static(b"<html>")));
        assert_eq!(garbage.err().unwrap().code, jsonrpc::UPSTREAM_ERROR);
        let one = read_answers(
            "ethereum",
            Ok(Bytes::from_static(br#"{"id":1,"result":"0x1"}"#)),
        );
        assert_eq!(one.ok().unwrap().len(), 1);
        let batch = read_answers(
            "ethereum",
            Ok(Bytes::from_static(br#"[{"id":1},{"id":2}]"#)),
        );
        assert_eq!(batch.ok().unwrap().len(), 2);

        let mut slots = vec![
            Slot::Pending {
                call: call(Some(json!(1))),
                cache_key: None,
            },
            Slot::Done(outcome("eth_blockNumber", UsageStatus::RateLimited)),
            Slot::Pending {
                call: call(None),
                cache_key: None,
            },
        ];
        let failure = UpstreamFailure {
            status: StatusCode::BAD_GATEWAY,
            code: jsonrpc::UPSTREAM_ERROR,
            message: "upstream failed".into(),
        };
        fail_pending(&failure, &mut slots);
        let outcomes: Vec<&Outcome> = slots
            .iter()
            .map(|s| match s {
                Slot::Done(o) => o,
                Slot::Pending { .. } => panic!("left pending"),
            })
            .collect();
        assert_eq!(outcomes[0].status, UsageStatus::UpstreamError);
        assert_eq!(outcomes[0].cu, 0, "a failed call costs nothing");
        assert_eq!(outcomes[0].method, "eth_call");
        assert_eq!(outcomes[0].answer.as_ref().unwrap()["id"], 1);
        assert_eq!(
            outcomes[1].status,
            UsageStatus::RateLimited,
            "answered slots stay"
        );
        assert_eq!(outcomes[2].status, UsageStatus::UpstreamError);
        assert!(
            outcomes[2].answer.is_none(),
            "a notification gets no answer"
        );
    }
}
