//! Health: incidents (list, show, acknowledge, delivery log), notification
//! channels (create, list, show, delete, test) and node uptime.
//!
//! A channel's configuration, secrets included, is sealed under the master
//! key bound to the channel's id; responses only ever carry the redacted
//! form.

use crate::auth::{Caller, Credential};
use crate::clock::{now, rfc3339};
use crate::extract::{parse_id, Json, PathId, Query};
use crate::problem::{ApiError, ApiResult, InvalidParam, Problem, PROBLEM_JSON};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::lifecycle::IncidentState;
use hood_domain::machine::StateMachine;
use hood_domain::{ChannelId, IncidentId, NodeId, Timestamp};
use hood_health::{channel_aad, uptime_report, UptimeReport};
use hood_identity::master_key::MasterKey;
use hood_notify::{ChannelConfig, ConfigError, Notification, Notifier};
use hood_store::health::{
    Delivery, DeliveryAttempt, Incident, IncidentFilter, NotificationChannel,
};
use hood_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{incident_id}", get(get_incident))
        .route("/api/v1/incidents/{incident_id}/ack", post(ack_incident))
        .route(
            "/api/v1/incidents/{incident_id}/deliveries",
            get(incident_deliveries),
        )
        .route(
            "/api/v1/notification-channels",
            get(list_channels).post(create_channel),
        )
        .route(
            "/api/v1/notification-channels/{channel_id}",
            get(get_channel).delete(delete_channel),
        )
        .route(
            "/api/v1/notification-channels/{channel_id}/test",
            post(test_channel),
        )
        .route("/api/v1/nodes/{node_id}/uptime", get(node_uptime))
}

/// A failure of a health route: any [`ApiError`], plus the two statuses
/// only these routes answer with.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The channel configuration parses but does not validate (422). The
    /// message never repeats a secret.
    #[error("invalid channel configuration: {0}")]
    InvalidConfig(ConfigError),
    /// The channel names a destination notifications may not reach
    /// (loopback, private, link-local, …) and the operator has not allowed
    /// its network (400).
    #[error("refused channel destination: {0}")]
    RefusedDestination(ConfigError),
    /// A test notification could not be delivered (502). The text never
    /// carries a secret.
    #[error("test notification failed: {0}")]
    SendFailed(String),
}

impl From<StoreError> for HealthError {
    fn from(e: StoreError) -> Self {
        match e {
            // A racing change moved the incident somewhere the action does
            // not apply (e.g. resolved meanwhile).
            StoreError::InvalidTransition(t) => ApiError::Conflict(t.to_string()).into(),
            other => ApiError::from(other).into(),
        }
    }
}

impl HealthError {
    fn problem(status: StatusCode, detail: String, invalid: Vec<InvalidParam>) -> Response {
        let problem = Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail),
            invalid_params: invalid,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        resp
    }
}

impl IntoResponse for HealthError {
    fn into_response(self) -> Response {
        match self {
            HealthError::Api(e) => e.into_response(),
            HealthError::InvalidConfig(e) => {
                let name = format!("config.{}", e.field);
                Self::problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{name}: {}", e.message),
                    vec![InvalidParam {
                        name,
                        reason: e.message,
                    }],
                )
            }
            HealthError::RefusedDestination(e) => {
                let name = format!("config.{}", e.field);
                Self::problem(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: {}", e.message),
                    vec![InvalidParam {
                        name,
                        reason: e.message,
                    }],
                )
            }
            HealthError::SendFailed(text) => Self::problem(
                StatusCode::BAD_GATEWAY,
                format!("test notification failed: {text}"),
                vec![],
            ),
        }
    }
}

type HealthResult<T> = Result<T, HealthError>;

// ---------------------------------------------------------------- views --

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    pub id: Uuid,
    /// node_down | node_lagging | app_critical | host_unreachable | chain_halted
    pub category: String,
    /// info | warning | critical
    pub severity: String,
    /// open | acknowledged | muted | resolved
    pub state: String,
    pub node_id: Option<Uuid>,
    pub chain: Option<String>,
    pub title: String,
    pub detail: String,
    /// The chain-wide incident that mutes this one.
    pub root_id: Option<Uuid>,
    pub escalation_level: i64,
    pub opened_at: String,
    pub acknowledged_at: Option<String>,
    /// The user id (or API key id) that acknowledged it.
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<String>,
}

impl From<&Incident> for IncidentView {
    fn from(i: &Incident) -> Self {
        Self {
            id: i.id.0,
            category: i.category.as_str().into(),
            severity: i.severity.as_str().into(),
            state: i.state.as_str().into(),
            node_id: i.node_id.map(|n| n.0),
            chain: i.chain.clone(),
            title: i.title.clone(),
            detail: i.detail.clone(),
            root_id: i.root_id.map(|r| r.0),
            escalation_level: i.escalation_level,
            opened_at: rfc3339(i.opened_at),
            acknowledged_at: i.acknowledged_at.map(rfc3339),
            acknowledged_by: i.acknowledged_by.clone(),
            resolved_at: i.resolved_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttemptView {
    pub attempt: i64,
    pub at: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl From<&DeliveryAttempt> for DeliveryAttemptView {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            attempt: a.attempt,
            at: rfc3339(a.at),
            ok: a.ok,
            error: a.error.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub channel_id: Uuid,
    /// incident.opened | incident.escalated | incident.resolved
    pub event: String,
    pub escalation_level: i64,
    /// pending | delivered | failed
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// Every attempt, oldest first.
    pub attempts_log: Vec<DeliveryAttemptView>,
}

impl DeliveryView {
    fn new(d: &Delivery, attempts: &[DeliveryAttempt]) -> Self {
        Self {
            id: d.id.0,
            channel_id: d.channel_id.0,
            event: d.event.clone(),
            escalation_level: d.escalation_level,
            state: d.state.as_str().into(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
            attempts_log: attempts.iter().map(DeliveryAttemptView::from).collect(),
        }
    }
}

/// A notification channel; `config` is redacted (secrets are `***`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// webhook | slack | telegram | email
    pub kind: String,
    /// The configuration with every secret masked.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&NotificationChannel> for ChannelView {
    fn from(c: &NotificationChannel) -> Self {
        Self {
            id: c.id.0,
            org_id: c.org_id.0,
            name: c.name.clone(),
            kind: c.kind.clone(),
            config: c.redacted_config.clone(),
            enabled: c.enabled,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelRequest {
    /// Unique per organization.
    #[schema(schema_with = crate::schemas::display_name)]
    pub name: String,
    /// Tagged by `kind`: `webhook {url, secret}`, `slack {webhook_url}`,
    /// `telegram {bot_token, chat_id, api_base?}`, `email {smtp_host,
    /// smtp_port, tls?, from, to[], username?, password?}`.
    #[schema(value_type = Object)]
    pub config: ChannelConfig,
}

/// The outcome of a test notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelTestResult {
    pub delivered: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// Only incidents in this state.
    #[param(schema_with = crate::schemas::incident_state)]
    pub state: Option<String>,
    /// Only incidents of this node.
    #[param(value_type = Option<Uuid>)]
    pub node_id: Option<String>,
    /// `true`: only unresolved incidents.
    pub active: Option<bool>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UptimeQuery {
    /// The window ending now (default 24h).
    #[param(schema_with = crate::schemas::uptime_window)]
    pub window: Option<String>,
}

/// One hour of a node's uptime, in milliseconds per class.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UptimeBucketView {
    pub hour_start_ms: i64,
    pub up_ms: i64,
    pub syncing_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
}

/// A node's uptime over a window.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UptimeView {
    pub node_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub up_ms: i64,
    pub syncing_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
    /// `(up + syncing) / (up + syncing + down)`; null when nothing counted.
    pub ratio: Option<f64>,
    /// The ratio as a percentage.
    pub uptime_percent: Option<f64>,
    /// How syncing time is counted.
    pub syncing_counts_as: String,
    /// How maintenance time is counted.
    pub maintenance: String,
    /// Hour by hour, oldest first.
    pub buckets: Vec<UptimeBucketView>,
}

impl From<UptimeReport> for UptimeView {
    fn from(r: UptimeReport) -> Self {
        Self {
            node_id: r.node_id,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            up_ms: r.summary.up_ms,
            syncing_ms: r.summary.syncing_ms,
            down_ms: r.summary.down_ms,
            maintenance_ms: r.summary.maintenance_ms,
            ratio: r.summary.ratio,
            uptime_percent: r.uptime_percent,
            syncing_counts_as: r.syncing_counts_as.to_owned(),
            maintenance: r.maintenance.to_owned(),
            buckets: r
                .buckets
                .iter()
                .map(|b| UptimeBucketView {
                    hour_start_ms: b.hour_start_ms,
                    up_ms: b.up_ms,
                    syncing_ms: b.syncing_ms,
                    down_ms: b.down_ms,
                    maintenance_ms: b.maintenance_ms,
                })
                .collect(),
        }
    }
}

// ------------------------------------------------------------ incidents --

fn limit_param(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid("limit", "must be between 1 and 1000"))
    }
}

async fn visible_incident(
    state: &AppState,
    caller: &Caller,
    id: IncidentId,
) -> ApiResult<Incident> {
    caller.require(Permission::Read)?;
    state
        .store
        .get_incident(Some(caller.org_id), id)
        .await?
        .ok_or(ApiError::NotFound("incident"))
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery),
    responses((status = 200, body = Page<IncidentView>)), security(("bearer" = ["read"])))]
/// The organization's incidents, newest first.
pub async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<IncidentQuery>,
) -> HealthResult<Json<Page<IncidentView>>> {
    caller.require(Permission::Read)?;
    let mut errors = Vec::new();
    let wanted_state = match q.state.as_deref() {
        None => None,
        Some(s) => {
            let parsed = IncidentState::parse(s);
            if parsed.is_none() {
                errors.push(hood_domain::validate::FieldError::new(
                    "state",
                    "must be one of open, acknowledged, muted, resolved",
                ));
            }
            parsed
        }
    };
    let node_id = match q.node_id.as_deref() {
        None => None,
        Some(raw) => match parse_id::<NodeId>(raw) {
            Some(n) => Some(n),
            None => {
                errors.push(hood_domain::validate::FieldError::new(
                    "node_id",
                    format!("`{raw}` is not a valid id"),
                ));
                None
            }
        },
    };
    let limit = match limit_param(q.limit) {
        Ok(l) => l,
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            0
        }
        Err(e) => return Err(e.into()),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors).into());
    }
    let filter = IncidentFilter {
        state: wanted_state,
        node_id,
        active: q.active.unwrap_or(false),
        limit,
    };
    let incidents = state.store.list_incidents(caller.org_id, &filter).await?;
    Ok(Json(Page {
        items: incidents.iter().map(IncidentView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/incidents/{incident_id}", tag = "incidents", params(("incident_id" = Uuid, Path)),
    responses((status = 200, body = IncidentView)), security(("bearer" = ["read"])))]
pub async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<IncidentId>,
) -> HealthResult<Json<IncidentView>> {
    let incident = visible_incident(&state, &caller, id).await?;
    Ok(Json(IncidentView::from(&incident)))
}

/// Who the incident is acknowledged by: the API key's id for key callers,
/// the user's id otherwise.
fn acknowledger(caller: &Caller) -> String {
    match &caller.credential {
        Credential::ApiKey { id, .. } => id.to_string(),
        Credential::Session(_) | Credential::Oidc => caller.user_id.to_string(),
    }
}

#[utoipa::path(post, path = "/api/v1/incidents/{incident_id}/ack", tag = "incidents", params(("incident_id" = Uuid, Path)),
    responses((status = 200, body = IncidentView), (status = 409, description = "The incident is already resolved")),
    security(("bearer" = ["read", "operate"])))]
/// Acknowledges an incident: escalation stops. Acknowledging twice is a
/// no-op; a resolved incident cannot be acknowledged.
pub async fn ack_incident(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<IncidentId>,
) -> HealthResult<Json<IncidentView>> {
    let incident = visible_incident(&state, &caller, id).await?;
    caller.require(Permission::Operate)?;
    if incident.state == IncidentState::Resolved && incident.acknowledged_at.is_none() {
        return Err(ApiError::Conflict("the incident is already resolved".into()).into());
    }
    let by = acknowledger(&caller);
    let incident = state
        .store
        .acknowledge_incident(caller.org_id, id, &by, now())
        .await?;
    tracing::info!(incident_id = %incident.id, acknowledged_by = %by, "incident acknowledged");
    Ok(Json(IncidentView::from(&incident)))
}

#[utoipa::path(get, path = "/api/v1/incidents/{incident_id}/deliveries", tag = "incidents",
    params(("incident_id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = Page<DeliveryView>)), security(("bearer" = ["read"])))]
/// The incident's notification log, newest first, each with its attempts.
pub async fn incident_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<IncidentId>,
    Query(q): Query<DeliveriesQuery>,
) -> HealthResult<Json<Page<DeliveryView>>> {
    let incident = visible_incident(&state, &caller, id).await?;
    let limit = limit_param(q.limit)?;
    let deliveries = state
        .store
        .list_deliveries(caller.org_id, Some(incident.id), limit)
        .await?;
    let mut items = Vec::with_capacity(deliveries.len());
    for d in &deliveries {
        let attempts = state.store.delivery_attempts(d.id).await?;
        items.push(DeliveryView::new(d, &attempts));
    }
    Ok(Json(Page { items }))
}

// ------------------------------------------------------------- channels --

fn master_key(state: &AppState) -> ApiResult<&MasterKey> {
    state.master.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "this process holds no master key to seal notification channel secrets".into(),
        )
    })
}

#[utoipa::path(post, path = "/api/v1/notification-channels", tag = "notification-channels", request_body = CreateChannelRequest,
    responses((status = 201, body = ChannelView),
        (status = 409, description = "The organization has a channel of this name"),
        (status = 422, description = "The configuration does not validate; `invalid-params` names the field"),
        (status = 503, description = "This process holds no master key to seal the channel's secrets")),
    security(("bearer" = ["operate"])))]
/// Adds a notification channel. Its secrets are sealed at rest and never
/// shown again. A destination that is not a public address (loopback,
/// private, link-local, …) is refused with 400 unless the operator allows
/// its network; a host name is checked again, after resolution, at every
/// send.
pub async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateChannelRequest>,
) -> HealthResult<impl IntoResponse> {
    caller.require(Permission::Operate)?;
    hood_domain::validate::display_name("name", &req.name).map_err(ApiError::from)?;
    req.config.validate().map_err(HealthError::InvalidConfig)?;
    // What can be judged without DNS; names are checked at every send.
    state
        .notify
        .destinations
        .check_channel(&req.config)
        .map_err(HealthError::RefusedDestination)?;
    let master = master_key(&state)?;
    let id = ChannelId::from_uuid(Uuid::now_v7());
    let plain = serde_json::to_vec(&req.config)
        .map_err(|e| ApiError::Internal(format!("serializing a channel config: {e}")))?;
    let sealed = master
        .seal(&plain, &channel_aad(&id))
        .map_err(|e| ApiError::Internal(format!("sealing a channel config: {e}")))?;
    drop(plain);
    let now = now();
    let channel = NotificationChannel {
        id,
        org_id: caller.org_id,
        name: req.name.trim().to_owned(),
        kind: req.config.kind().to_owned(),
        sealed_config: sealed,
        redacted_config: req.config.redacted(),
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    state.store.create_channel(&channel).await?;
    tracing::info!(channel_id = %channel.id, kind = %channel.kind, "notification channel created");
    Ok((StatusCode::CREATED, Json(ChannelView::from(&channel))))
}

#[utoipa::path(get, path = "/api/v1/notification-channels", tag = "notification-channels",
    responses((status = 200, body = Page<ChannelView>)), security(("bearer" = ["read"])))]
/// The organization's notification channels (redacted).
pub async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> HealthResult<Json<Page<ChannelView>>> {
    caller.require(Permission::Read)?;
    let channels = state.store.list_channels(caller.org_id).await?;
    Ok(Json(Page {
        items: channels.iter().map(ChannelView::from).collect(),
    }))
}

async fn visible_channel(
    state: &AppState,
    caller: &Caller,
    id: ChannelId,
) -> ApiResult<NotificationChannel> {
    caller.require(Permission::Read)?;
    state
        .store
        .get_channel(caller.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("notification channel"))
}

#[utoipa::path(get, path = "/api/v1/notification-channels/{channel_id}", tag = "notification-channels",
    params(("channel_id" = Uuid, Path)),
    responses((status = 200, body = ChannelView)), security(("bearer" = ["read"])))]
pub async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ChannelId>,
) -> HealthResult<Json<ChannelView>> {
    let channel = visible_channel(&state, &caller, id).await?;
    Ok(Json(ChannelView::from(&channel)))
}

#[utoipa::path(delete, path = "/api/v1/notification-channels/{channel_id}", tag = "notification-channels",
    params(("channel_id" = Uuid, Path)),
    responses((status = 204, description = "The channel and its secrets are gone")),
    security(("bearer" = ["read", "operate"])))]
/// Removes a channel: its secrets are erased and pending deliveries to it fail.
pub async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ChannelId>,
) -> HealthResult<StatusCode> {
    caller.require(Permission::Read)?;
    caller.require(Permission::Operate)?;
    if !state.store.delete_channel(caller.org_id, id, now()).await? {
        return Err(ApiError::NotFound("notification channel").into());
    }
    tracing::info!(channel_id = %id, "notification channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/notification-channels/{channel_id}/test", tag = "notification-channels",
    params(("channel_id" = Uuid, Path)),
    responses((status = 200, body = ChannelTestResult),
        (status = 502, description = "The channel refused the notification or could not be reached"),
        (status = 503, description = "This process holds no master key to open the channel's secrets")),
    security(("bearer" = ["read", "operate"])))]
/// Sends a `test` notification on the channel right now (nothing is queued).
pub async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ChannelId>,
) -> HealthResult<Json<ChannelTestResult>> {
    let channel = visible_channel(&state, &caller, id).await?;
    caller.require(Permission::Operate)?;
    let master = master_key(&state)?;
    let plain = master
        .open(&channel.sealed_config, &channel_aad(&channel.id))
        .map_err(|e| ApiError::Internal(format!("opening channel {}: {e}", channel.id)))?;
    let config: ChannelConfig = serde_json::from_slice(&plain)
        .map_err(|e| ApiError::Internal(format!("channel {} config: {e}", channel.id)))?;
    drop(plain);
    let notifier = Notifier::new(state.notify.clone())
        .map_err(|e| ApiError::Internal(format!("building the notifier: {e}")))?;
    let at: Timestamp = now();
    let notification = Notification {
        delivery_id: Uuid::now_v7().to_string(),
        event: "test".to_owned(),
        incident_id: String::new(),
        org_id: caller.org_id.to_string(),
        category: "test".to_owned(),
        severity: "info".to_owned(),
        title: format!("Test notification for channel `{}`", channel.name),
        detail: "Sent from Hood on request; no incident is open.".to_owned(),
        node_id: None,
        chain: None,
        escalation_level: 0,
        occurred_at_ms: at.millis(),
    };
    match notifier.send(&config, &notification).await {
        Ok(()) => Ok(Json(ChannelTestResult { delivered: true })),
        Err(e) => {
            tracing::warn!(channel_id = %channel.id, error = %e, "test notification failed");
            Err(HealthError::SendFailed(e.to_string()))
        }
    }
}

// --------------------------------------------------------------- uptime --

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/uptime", tag = "nodes",
    params(("node_id" = Uuid, Path), UptimeQuery),
    responses((status = 200, body = UptimeView)), security(("bearer" = ["read"])))]
/// The node's uptime over the window ending now (syncing counts as up,
/// maintenance is excluded).
pub async fn node_uptime(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Query(q): Query<UptimeQuery>,
) -> HealthResult<Json<UptimeView>> {
    caller.require(Permission::Read)?;
    let window = q.window.as_deref().unwrap_or("24h");
    let Some(&(_, window_ms)) = crate::schemas::UPTIME_WINDOWS
        .iter()
        .find(|(name, _)| *name == window)
    else {
        let allowed: Vec<&str> = crate::schemas::UPTIME_WINDOWS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        return Err(
            ApiError::invalid("window", format!("must be one of {}", allowed.join(", "))).into(),
        );
    };
    let node = state
        .store
        .get_node(Some(caller.org_id), id)
        .await?
        .ok_or(ApiError::NotFound("node"))?;
    let to = now();
    let from = Timestamp::from_millis(to.millis().saturating_sub(window_ms));
    let report = uptime_report(state.store.as_ref(), node.id, from, to).await?;
    Ok(Json(report.into()))
}
