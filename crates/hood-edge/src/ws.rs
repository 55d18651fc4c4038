//! JSON-RPC over WebSocket: `GET /{chain}/v1/{key}` (or
//! `{chain}.{domain}/v1/{key}`) with an `Upgrade: websocket`, for
//! `eth_subscribe` (`newHeads`, `logs`, …) and plain calls.
//!
//! # At connect
//!
//! The same gate as HTTP, once, before upgrading: an unknown or revoked key
//! gets HTTP 401, an unknown chain 404, a chain, client address or origin
//! the key does not allow 403 — each with a JSON-RPC error body like the
//! HTTP side, and a refusal of a verified key is metered like an HTTP one
//! (method `-`). Then the edge opens its own WebSocket to one upstream of
//! the chain (the pool's candidates in order, [`Upstream::ws_url`]); when
//! none accepts, the client's socket is closed with 1011 and a reason that
//! names no URL.
//!
//! # Calls (client → upstream)
//!
//! Every text (or binary) message is parsed like an HTTP body (one call or
//! a batch) and every call goes through the same admission as HTTP
//! ([`Edge::admit_call`]: method scope, CU price, GCRA on the bucket
//! `"{key_id}:{chain}"` shared with HTTP). Refusals are answered by the
//! edge itself with the HTTP side's codes and messages. Admitted calls are
//! forwarded with an id of the edge's own, so every answer is matched to
//! its call (whatever ids the client picks) and a batch is answered as one
//! array in the client's order, refusals merged in. One usage event per
//! answered call, written when the answer is delivered, exactly like HTTP
//! (method, CU, status); a JSON-RPC notification (no id) is metered once
//! forwarded. A call the upstream leaves unanswered for the pool's request
//! timeout is answered with an upstream error (0 CU). `http_status` of an
//! event is what the same call would have got as a single HTTP request.
//!
//! # Pushed messages (upstream → client)
//!
//! Subscription messages (`{"method":"eth_subscription",…}`) are forwarded
//! as they are, and each one is one usage event: method `eth_subscription`,
//! [`SUBSCRIPTION_MESSAGE_CU`], status `ok`. Each is also charged to the
//! key × chain GCRA bucket, so subscriptions and calls share the plan's
//! compute units. A pushed message is never dropped: dropping a head or a
//! log silently would corrupt the subscriber's view. When the bucket has no
//! room for one, the message is still delivered and metered, and the socket
//! is then closed with 1008 and a reason that says the plan's limit was
//! exceeded by subscriptions; the client may reconnect and subscribe again
//! once its bucket has refilled. So a plan's burst absorbs bursts of
//! messages, and a subscription that outruns the plan is cut off instead
//! of running over it for ever. (Calls over the limit are refused one by
//! one, as over HTTP; only pushed messages close the socket.)
//!
//! # Lifetime
//!
//! * The key is re-checked every
//!   [`WsSettings::recheck_every`](crate::settings::WsSettings::recheck_every)
//!   (1 s) with
//!   [`KeyCache::verify_fresh`](crate::keys::KeyCache::verify_fresh), which
//!   reads the store (sockets of one key share a read made within half a
//!   period), so no bus event is needed to cut a socket off. A revoked key
//!   closes the socket with 1008 `API key revoked`; a key whose scope no
//!   longer admits the chain, the client address or the origin closes it
//!   with 1008 and the same message an HTTP request would get. If the store
//!   cannot be read, the socket stays open for up to 30 s, then closes with
//!   1011. The token is kept in memory for this and never logged.
//! * Either side closing closes the other; the upstream going away closes
//!   the client with 1011 (its subscriptions are gone). Pings are answered
//!   by the WebSocket library on both sides. A client message larger than
//!   the HTTP body limit closes with 1009. A client that takes more than
//!   10 s to accept a message is disconnected.
//! * Shutdown closes every socket with 1001 and waits (up to the drain
//!   timeout) for the sessions to end, so their usage events are written.
//!
//! Nothing here logs the token, a path or an upstream URL: spans carry the
//! key id and the chain, upstreams appear as [`Upstream::display`].

use crate::admission::{Admission, Outcome};
use crate::jsonrpc::{self, Item};
use crate::keys::KeyCheck;
use crate::reply::{no_chain_in_host, reply};
use crate::state::Edge;
use crate::upstream::Upstream;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hood_domain::rpc::{Plan, RpcKey, UsageStatus, SUBSCRIPTION_MESSAGE_CU};
use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::Instrument;

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Rejection = axum::extract::ws::rejection::WebSocketUpgradeRejection;

/// The method of subscription messages (`eth_subscribe`).
pub const SUBSCRIPTION_METHOD: &str = "eth_subscription";

/// How long the store may be unreadable before open sockets are closed.
const VERIFY_GRACE: Duration = Duration::from_secs(30);
/// How long a client may take to accept one message.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest close reason: a close frame's payload is at most 125 bytes, two
/// of which are the code.
const MAX_CLOSE_REASON: usize = 123;

pub(crate) async fn by_path(
    State(edge): State<Arc<Edge>>,
    Path((chain, key)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, Rejection>,
) -> Response {
    connect(edge, chain, key, peer, &headers, upgrade).await
}

pub(crate) async fn by_host(
    State(edge): State<Arc<Edge>>,
    Path(key): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, Rejection>,
) -> Response {
    match edge.chain_from_host(&headers) {
        Some(chain) => connect(edge, chain, key, peer, &headers, upgrade).await,
        None => no_chain_in_host(),
    }
}

/// The gate at connect, then the upgrade.
async fn connect(
    edge: Arc<Edge>,
    chain: String,
    token: String,
    peer: SocketAddr,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, Rejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            return reply(
                rejection.status(),
                jsonrpc::error_response(
                    &Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    &format!(
                        "a GET here opens a WebSocket ({}); send JSON-RPC over HTTP with POST",
                        rejection.body_text()
                    ),
                    None,
                ),
                None,
            )
        }
    };
    let started = Instant::now();
    let key = match edge.authenticate(&token).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let origin = headers
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    if let Err(refusal) = edge.admit_connection(&key, &chain, peer.ip(), origin.as_deref()) {
        return edge.refuse(&key, &chain, started, &refusal, UsageStatus::Denied);
    }
    let span = tracing::info_span!("ws", key_id = %key.id, chain = %chain);
    let guard = edge.ws.sessions.enter();
    let max = edge.ws.max_message_bytes;
    let session = Session {
        bucket: Edge::bucket(&key, &chain),
        edge,
        chain,
        token,
        peer: peer.ip(),
        origin,
        key,
        next_id: 0,
        pending: HashMap::new(),
        batches: HashMap::new(),
        next_batch: 0,
        verify_failing_since: None,
    };
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            async move {
                session.run(socket).await;
                drop(guard);
            }
            .instrument(span)
        })
}

/// A forwarded call waiting for its answer.
struct Pending {
    /// The id the client gave it.
    client_id: Value,
    method: String,
    cu: u32,
    started: Instant,
    /// (batch, position) when it is part of a batch.
    batch: Option<(u64, usize)>,
}

/// A batch with forwarded calls still unanswered.
struct PendingBatch {
    /// Answers in the client's order; `None` = waiting (or no answer).
    answers: Vec<Option<Value>>,
    /// The usage of every answered element, written on delivery.
    usage: Vec<Outcome>,
    waiting: usize,
    started: Instant,
}

/// Why a session ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client closed or vanished: only the upstream is closed.
    ClientGone,
    /// Close the client with this code and reason, then the upstream.
    Close { code: u16, reason: String },
}

impl End {
    fn close(code: u16, reason: &str) -> Self {
        End::Close {
            code,
            reason: close_reason(reason),
        }
    }
}

/// What an upstream message is.
#[derive(Debug, PartialEq)]
enum FromUpstream {
    /// Answers to forwarded calls: (the edge's id, the answer).
    Answers(Vec<(Option<u64>, Value)>),
    /// A message pushed by a subscription, metered under `method`.
    Push { method: String },
    /// Anything else (dropped).
    Other,
}

fn classify(message: Value) -> FromUpstream {
    fn edge_id(answer: &Value) -> Option<u64> {
        answer.get("id").and_then(Value::as_u64)
    }
    match message {
        Value::Array(answers) => {
            FromUpstream::Answers(answers.into_iter().map(|a| (edge_id(&a), a)).collect())
        }
        Value::Object(ref object) => {
            let has_id = object.get("id").is_some_and(|id| !id.is_null());
            match object.get("method").and_then(Value::as_str) {
                Some(method) if !has_id => FromUpstream::Push {
                    method: if method.is_empty() || method.len() > 128 {
                        SUBSCRIPTION_METHOD.to_owned()
                    } else {
                        method.to_owned()
                    },
                },
                Some(_) => FromUpstream::Other,
                None if has_id => FromUpstream::Answers(vec![(edge_id(&message), message)]),
                None => FromUpstream::Other,
            }
        }
        _ => FromUpstream::Other,
    }
}

/// A call object with its id replaced.
fn with_id(raw: &Value, id: Value) -> Value {
    let mut raw = raw.clone();
    if let Value::Object(object) = &mut raw {
        object.insert("id".to_owned(), id);
    }
    raw
}

/// What the same call would have got as a single HTTP request.
fn http_equivalent(o: &Outcome) -> u16 {
    match o.status {
        UsageStatus::Ok => 200,
        UsageStatus::RpcError if o.method == "-" => 400,
        UsageStatus::RpcError => 200,
        UsageStatus::Denied => 403,
        UsageStatus::RateLimited => 429,
        UsageStatus::UpstreamError => 502,
    }
}

/// A close reason that fits a close frame (cut at a character boundary).
fn close_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Why an upstream WebSocket could not be opened, without its URL.
fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        tungstenite::Error::Io(_) => "connection failed".to_owned(),
        tungstenite::Error::Http(response) => {
            format!("handshake refused with HTTP {}", response.status().as_u16())
        }
        tungstenite::Error::Url(_) => "not a usable WebSocket URL".to_owned(),
        _ => "WebSocket or TLS handshake failed".to_owned(),
    }
}

/// One open socket.
struct Session {
    edge: Arc<Edge>,
    chain: String,
    /// Kept for the periodic re-check; never logged.
    token: String,
    peer: IpAddr,
    origin: Option<String>,
    /// The key as last verified (scope and plan changes apply at once).
    key: Arc<RpcKey>,
    bucket: String,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    batches: HashMap<u64, PendingBatch>,
    next_batch: u64,
    verify_failing_since: Option<Instant>,
}

impl Session {
    async fn run(mut self, mut client: WebSocket) {
        let mut stop = self.edge.ws.stop.clone();
        if *stop.borrow() {
            close_client(&mut client, close_code::AWAY, "edge shutting down").await;
            return;
        }
        let connected = tokio::select! {
            c = self.connect_upstream() => c,
            _ = stop.changed() => Err("edge shutting down".to_owned()),
        };
        let (mut upstream, via) = match connected {
            Ok(connected) => connected,
            Err(reason) => {
                let code = if *stop.borrow() {
                    close_code::AWAY
                } else {
                    close_code::ERROR
                };
                close_client(&mut client, code, &reason).await;
                return;
            }
        };
        tracing::debug!(upstream = %via.display, "websocket open");
        let mut tick = tokio::time::interval(self.edge.ws.recheck_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let end = loop {
            let step = tokio::select! {
                m = client.recv() => match m {
                    Some(Ok(Message::Text(text))) => {
                        self.on_client_message(text.as_bytes(), &mut client, &mut upstream).await
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        self.on_client_message(&bytes, &mut client, &mut upstream).await
                    }
                    // Pings are answered by the library.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(End::ClientGone),
                    Some(Err(e)) => Err(self.client_error(e)),
                },
                m = upstream.next() => match m {
                    Some(Ok(tungstenite::Message::Text(text))) => {
                        self.on_upstream_message(text.as_bytes(), &mut client, &via).await
                    }
                    Some(Ok(tungstenite::Message::Binary(bytes))) => {
                        self.on_upstream_message(&bytes, &mut client, &via).await
                    }
                    Some(Ok(
                        tungstenite::Message::Ping(_)
                        | tungstenite::Message::Pong(_)
                        | tungstenite::Message::Frame(_),
                    )) => Ok(()),
                    Some(Ok(tungstenite::Message::Close(_))) | None => {
                        tracing::info!(upstream = %via.display, "upstream closed the websocket");
                        Err(End::close(close_code::ERROR, "upstream connection lost"))
                    }
                    Some(Err(e)) => {
                        tracing::info!(upstream = %via.display, error = %e, "upstream websocket failed");
                        Err(End::close(close_code::ERROR, "upstream connection lost"))
                    }
                },
                _ = tick.tick() => self.on_tick(&mut client).await,
                _ = stop.changed() => Err(End::close(close_code::AWAY, "edge shutting down")),
            };
            if let Err(end) = step {
                break end;
            }
        };
        tracing::debug!(?end, unanswered = self.pending.len(), "websocket closing");
        match end {
            End::ClientGone => {
                // Completes the closing handshake the client began, if any.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await;
            }
            End::Close { code, reason } => close_client(&mut client, code, &reason).await,
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.close(None)).await;
    }

    /// A client read error: an oversized message closes with 1009.
    fn client_error(&self, e: axum::Error) -> End {
        match e.into_inner().downcast::<tungstenite::Error>() {
            Ok(e) if matches!(*e, tungstenite::Error::Capacity(_)) => End::close(
                close_code::SIZE,
                &format!(
                    "message larger than {} bytes",
                    self.edge.ws.max_message_bytes
                ),
            ),
            _ => End::ClientGone,
        }
    }

    /// Opens a WebSocket to the first candidate upstream that accepts one.
    /// `Err` is a close reason for the client (no URL in it).
    async fn connect_upstream(&self) -> Result<(UpstreamSocket, Arc<Upstream>), String> {
        let pools = &self.edge.pools;
        let config = pools.config();
        let candidates = pools
            .chain(&self.chain)
            .map(|pool| pool.candidates(config.lag_tolerance))
            .unwrap_or_default();
        if candidates.is_empty() {
            return Err(format!(
                "no healthy upstream for `{}` right now",
                self.chain
            ));
        }
        for upstream in candidates.iter().take(config.max_attempts.max(1)) {
            match self.open(upstream, config.request_timeout).await {
                Ok(socket) => return Ok((socket, upstream.clone())),
                Err(why) => {
                    tracing::warn!(upstream = %upstream.display, error = %why, "upstream websocket connect failed");
                }
            }
        }
        Err(format!(
            "no upstream for `{}` accepted a WebSocket connection",
            self.chain
        ))
    }

    async fn open(&self, upstream: &Upstream, timeout: Duration) -> Result<UpstreamSocket, String> {
        let mut request = upstream
            .ws_url()
            .into_client_request()
            .map_err(|e| describe(&e))?;
        if let Some(auth) = upstream.authorization() {
            let value = HeaderValue::from_str(&auth)
                .map_err(|_| "credentials are not a valid header".to_owned())?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            Some(self.edge.ws.tls.clone()),
        );
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    /// The plan of the key as last verified.
    fn plan(&self) -> Result<Plan, End> {
        self.edge.plans.get(&self.key.plan).cloned().ok_or_else(|| {
            End::close(
                close_code::POLICY,
                &format!("plan `{}` is not available", self.key.plan),
            )
        })
    }

    fn meter(&self, o: &Outcome, started: Instant) {
        self.edge
            .record_usage(&self.key, &self.chain, o, http_equivalent(o), started);
    }

    /// One client message: parse, admit each call, forward what was
    /// admitted, answer the rest.
    async fn on_client_message(
        &mut self,
        body: &[u8],
        client: &mut WebSocket,
        upstream: &mut UpstreamSocket,
    ) -> Result<(), End> {
        let started = Instant::now();
        let request = match jsonrpc::parse(body, self.edge.max_batch) {
            Ok(r) => r,
            Err(e) => {
                let o = Outcome {
                    method: "-".to_owned(),
                    cu: 0,
                    status: UsageStatus::RpcError,
                    answer: Some(jsonrpc::error_response(
                        &Value::Null,
                        e.code(),
                        &e.to_string(),
                        None,
                    )),
                };
                return self.deliver_one(client, o, started).await;
            }
        };
        let (items, batch) = request.into_items();
        let plan = self.plan()?;
        let batch_no = self.next_batch;
        let mut retry_after: Option<u64> = None;
        // Per element: the edge's answer (refusals), or None (forwarded).
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        let mut forward: Vec<Value> = Vec::new();
        // Forwarded notifications: metered once forwarded.
        let mut notifications: Vec<Outcome> = Vec::new();
        let mut waiting = 0usize;
        for (i, item) in items.into_iter().enumerate() {
            let call = match item {
                Item::Invalid { id, reason } => {
                    outcomes.push(Some(Outcome::invalid(&id, &reason)));
                    continue;
                }
                Item::Call(call) => call,
            };
            let call = match self
                .edge
                .admit_call(
                    &self.key,
                    &self.chain,
                    &plan,
                    &self.bucket,
                    call,
                    &mut retry_after,
                )
                .await
            {
                Admission::Forward(call) => call,
                Admission::Refused(outcome) => {
                    outcomes.push(Some(outcome));
                    continue;
                }
            };
            outcomes.push(None);
            let cu = self.edge.pricing.price(&call.method);
            match call.id {
                None => {
                    forward.push(call.raw);
                    notifications.push(Outcome {
                        method: call.method,
                        cu,
                        status: UsageStatus::Ok,
                        answer: None,
                    });
                }
                Some(client_id) => {
                    self.next_id += 1;
                    let id = self.next_id;
                    forward.push(with_id(&call.raw, Value::from(id)));
                    self.pending.insert(
                        id,
                        Pending {
                            client_id,
                            method: call.method,
                            cu,
                            started,
                            batch: batch.then_some((batch_no, i)),
                        },
                    );
                    waiting += 1;
                }
            }
        }
        if !forward.is_empty() {
            let text = if batch {
                Value::Array(forward).to_string()
            } else {
                forward
                    .into_iter()
                    .next()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            if let Err(e) = upstream.send(tungstenite::Message::text(text)).await {
                tracing::info!(error = %e, "forwarding to the upstream failed");
                return Err(End::close(close_code::ERROR, "upstream connection lost"));
            }
            for o in &notifications {
                self.meter(o, started);
            }
        }
        if !batch {
            return match outcomes.into_iter().flatten().next() {
                Some(o) => self.deliver_one(client, o, started).await,
                None => Ok(()),
            };
        }
        let mut answers = Vec::with_capacity(outcomes.len());
        let mut usage = Vec::new();
        for o in outcomes {
            match o {
                Some(mut o) => {
                    answers.push(o.answer.take());
                    usage.push(o);
                }
                None => answers.push(None),
            }
        }
        let pending = PendingBatch {
            answers,
            usage,
            waiting,
            started,
        };
        if waiting == 0 {
            return self.deliver_batch(client, pending).await;
        }
        self.next_batch += 1;
        self.batches.insert(batch_no, pending);
        Ok(())
    }

    /// Sends one answer (if any) and meters it.
    async fn deliver_one(
        &mut self,
        client: &mut WebSocket,
        o: Outcome,
        started: Instant,
    ) -> Result<(), End> {
        if let Some(answer) = &o.answer {
            send(client, answer.to_string()).await?;
        }
        self.meter(&o, started);
        Ok(())
    }

    /// Sends a complete batch's answers as one array and meters them.
    async fn deliver_batch(
        &mut self,
        client: &mut WebSocket,
        batch: PendingBatch,
    ) -> Result<(), End> {
        let answers: Vec<Value> = batch.answers.into_iter().flatten().collect();
        if !answers.is_empty() {
            send(client, Value::Array(answers).to_string()).await?;
        }
        for o in &batch.usage {
            self.meter(o, batch.started);
        }
        Ok(())
    }

    /// The answer to a pending call arrived (or it timed out).
    async fn resolve(
        &mut self,
        client: &mut WebSocket,
        id: u64,
        answer: Value,
        timed_out: bool,
    ) -> Result<(), End> {
        let Some(p) = self.pending.remove(&id) else {
            tracing::debug!("an upstream answer matches no waiting call; dropped");
            return Ok(());
        };
        let answer = with_id(&answer, p.client_id);
        let (status, cu) = if timed_out {
            (UsageStatus::UpstreamError, 0)
        } else if jsonrpc::is_error_response(&answer) {
            (UsageStatus::RpcError, p.cu)
        } else {
            (UsageStatus::Ok, p.cu)
        };
        let mut o = Outcome {
            method: p.method,
            cu,
            status,
            answer: None,
        };
        let Some((batch_no, slot)) = p.batch else {
            o.answer = Some(answer);
            return self.deliver_one(client, o, p.started).await;
        };
        let Some(batch) = self.batches.get_mut(&batch_no) else {
            return Ok(());
        };
        if let Some(a) = batch.answers.get_mut(slot) {
            *a = Some(answer);
        }
        batch.usage.push(o);
        batch.waiting = batch.waiting.saturating_sub(1);
        if batch.waiting > 0 {
            return Ok(());
        }
        match self.batches.remove(&batch_no) {
            Some(batch) => self.deliver_batch(client, batch).await,
            None => Ok(()),
        }
    }

    /// One upstream message.
    async fn on_upstream_message(
        &mut self,
        body: &[u8],
        client: &mut WebSocket,
        via: &Upstream,
    ) -> Result<(), End> {
        let Ok(message) = serde_json::from_slice::<Value>(body) else {
            tracing::warn!(upstream = %via.display, "upstream sent a message that is not JSON; dropped");
            return Ok(());
        };
        match classify(message) {
            FromUpstream::Answers(answers) => {
                for (id, answer) in answers {
                    match id {
                        Some(id) => self.resolve(client, id, answer, false).await?,
                        None => {
                            tracing::debug!(upstream = %via.display, "upstream answer without a usable id; dropped");
                        }
                    }
                }
                Ok(())
            }
            FromUpstream::Push { method } => {
                let Ok(text) = std::str::from_utf8(body) else {
                    return Ok(());
                };
                self.push(client, text, method).await
            }
            FromUpstream::Other => {
                tracing::debug!(upstream = %via.display, "unexpected upstream message; dropped");
                Ok(())
            }
        }
    }

    /// A subscription message: charged to the bucket, delivered, metered;
    /// over the limit it is still delivered, then the socket closes.
    async fn push(
        &mut self,
        client: &mut WebSocket,
        text: &str,
        method: String,
    ) -> Result<(), End> {
        let started = Instant::now();
        let plan = self.plan()?;
        let decision = self
            .edge
            .charge(&self.bucket, u64::from(SUBSCRIPTION_MESSAGE_CU), &plan)
            .await;
        send(client, text.to_owned()).await?;
        self.meter(
            &Outcome {
                method,
                cu: SUBSCRIPTION_MESSAGE_CU,
                status: UsageStatus::Ok,
                answer: None,
            },
            started,
        );
        if decision.is_allowed() {
            return Ok(());
        }
        tracing::info!(plan = %plan.name, "subscription messages exceed the plan; closing");
        Err(End::close(
            close_code::POLICY,
            &format!(
                "rate limit exceeded: subscriptions outran plan `{}` ({} CU/min on `{}`)",
                plan.name, plan.cu_per_minute, self.chain
            ),
        ))
    }

    /// Every second: re-check the key, and answer calls that waited too long.
    async fn on_tick(&mut self, client: &mut WebSocket) -> Result<(), End> {
        // Half the period: every check reads the store, while sockets of the
        // same key checking within that window share one read.
        let max_age = self.edge.ws.recheck_every / 2;
        match self.edge.keys.verify_fresh(&self.token, max_age).await {
            Ok(KeyCheck::Valid(key)) => {
                self.verify_failing_since = None;
                if let Some(reason) = self.edge.stops.reason(key.org_id) {
                    tracing::info!("organization cut off; closing the websocket");
                    return Err(End::close(close_code::POLICY, &reason));
                }
                if let Err(r) =
                    self.edge
                        .admit_connection(&key, &self.chain, self.peer, self.origin.as_deref())
                {
                    tracing::info!(reason = %r.message, "key no longer admits this websocket");
                    return Err(End::close(close_code::POLICY, &r.message));
                }
                self.key = key;
            }
            Ok(KeyCheck::Revoked) => {
                tracing::info!("key revoked; closing the websocket");
                return Err(End::close(close_code::POLICY, "API key revoked"));
            }
            Ok(KeyCheck::Unknown) => {
                tracing::info!("key no longer exists; closing the websocket");
                return Err(End::close(close_code::POLICY, "invalid API key"));
            }
            Err(e) => {
                let since = *self.verify_failing_since.get_or_insert_with(Instant::now);
                tracing::warn!(error = %e, "re-checking the key failed");
                if since.elapsed() >= VERIFY_GRACE {
                    return Err(End::close(
                        close_code::ERROR,
                        "key verification unavailable, reconnect later",
                    ));
                }
            }
        }
        let timeout = self.edge.ws.call_timeout;
        let expired: Vec<(u64, Value)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.started.elapsed() >= timeout)
            .map(|(id, p)| {
                (
                    *id,
                    jsonrpc::error_response(
                        &p.client_id,
                        jsonrpc::UPSTREAM_ERROR,
                        "the upstream gave no answer to this call in time",
                        None,
                    ),
                )
            })
            .collect();
        for (id, answer) in expired {
            self.resolve(client, id, answer, true).await?;
        }
        Ok(())
    }
}

/// Sends a text message to the client; a client that does not take it in
/// time is given up on.
async fn send(client: &mut WebSocket, text: String) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, client.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::ClientGone),
        Err(_) => {
            tracing::info!("client too slow to take messages; disconnecting");
            Err(End::ClientGone)
        }
    }
}

/// Sends a close frame and lets the client answer it (briefly).
async fn close_client(client: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: close_reason(reason).into(),
    };
    let closing = async {
        if client.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(m)) = client.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_messages_are_told_apart() {
        let push = json!({"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{}}});
        assert_eq!(
            classify(push),
            FromUpstream::Push {
                method: "eth_subscription".into()
            }
        );
        let answer = json!({"jsonrpc":"2.0","id":7,"result":"0x1"});
        assert_eq!(
            classify(answer.clone()),
            FromUpstream::Answers(vec![(Some(7), answer.clone())])
        );
        let batch = json!([answer, {"jsonrpc":"2.0","id":"x","error":{"code":1}}]);
        let FromUpstream::Answers(list) = classify(batch) else {
            panic!()
        };
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].0, Some(7));
        assert_eq!(list[1].0, None, "not an id the edge gave");
        // A request from the upstream (has an id and a method) is not ours
        // to answer; neither is an error without an id.
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"x"})),
            FromUpstream::Other
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700}})),
            FromUpstream::Other
        );
        assert_eq!(classify(json!(3)), FromUpstream::Other);
        // An absurd method name is metered under the subscription method.
        assert_eq!(
            classify(json!({"method": "m".repeat(300)})),
            FromUpstream::Push {
                method: SUBSCRIPTION_METHOD.into()
            }
        );
    }

    #[test]
    fn ids_are_swapped_and_restored() {
        let raw =
            json!({"jsonrpc":"2.0","id":"client-1","method":"eth_subscribe","params":["newHeads"]});
        let out = with_id(&raw, json!(42));
        assert_eq!(out["id"], 42);
        assert_eq!(out["params"], raw["params"]);
        assert_eq!(with_id(&out, json!("client-1")), raw);
        assert_eq!(with_id(&json!(5), json!(1)), json!(5), "non-objects kept");
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        assert_eq!(close_reason("API key revoked"), "API key revoked");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert!(cut.len() >= MAX_CLOSE_REASON - 1);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn usage_of_websocket_calls_uses_the_http_status_of_a_single_call() {
        let o = |method: &str, status| Outcome {
            method: method.into(),
            cu: 0,
            status,
            answer: None,
        };
        assert_eq!(http_equivalent(&o("eth_blockNumber", UsageStatus::Ok)), 200);
        assert_eq!(http_equivalent(&o("eth_call", UsageStatus::RpcError)), 200);
        assert_eq!(http_equivalent(&o("-", UsageStatus::RpcError)), 400);
        assert_eq!(http_equivalent(&o("x", UsageStatus::Denied)), 403);
        assert_eq!(http_equivalent(&o("x", UsageStatus::RateLimited)), 429);
        assert_eq!(http_equivalent(&o("x", UsageStatus::UpstreamError)), 502);
    }

    #[test]
    fn connect_failures_name_no_url() {
        let e = tungstenite::Error::Url(tungstenite::error::UrlError::UnableToConnect(
            "wss://secret.example/v3/key".into(),
        ));
        assert!(!describe(&e).contains("secret"));
        let e = tungstenite::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&e), "connection refused");
    }
}
