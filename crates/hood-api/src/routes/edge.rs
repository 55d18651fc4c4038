//! The RPC edge's control surface: RPC keys (create, list, show, change,
//! revoke), the plans they can be on, and usage rollups.
//!
//! An RPC key's secret is in the create response only; Hood keeps its
//! SHA-256 and the public prefix. Keys are scoped to the caller's
//! organization: another org's key is a 404.

use crate::auth::Caller;
use crate::clock::{now, parse_rfc3339, rfc3339};
use crate::extract::{parse_id, Json, PathId, Query};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::rpc::{Granularity, KeyScope, RpcConfigError, RpcKey};
use hood_domain::validate::{self, FieldError};
use hood_domain::{RpcKeyId, Timestamp};
use hood_identity::api_keys::generate_rpc_key;
use hood_store::edge::{UsageQuery, UsageRollup};
use hood_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rpc-keys", get(list_rpc_keys).post(create_rpc_key))
        .route(
            "/api/v1/rpc-keys/{key_id}",
            get(get_rpc_key)
                .patch(update_rpc_key)
                .delete(revoke_rpc_key),
        )
        .route("/api/v1/rpc-plans", get(list_rpc_plans))
        .route("/api/v1/usage", get(usage))
}

/// Longest window `GET /usage` answers at hourly granularity.
pub const MAX_HOURLY_WINDOW_MS: i64 = 31 * 86_400_000;
/// Longest window `GET /usage` answers at daily granularity.
pub const MAX_DAILY_WINDOW_MS: i64 = 400 * 86_400_000;
/// The window `GET /usage` covers when `from` is omitted.
pub const DEFAULT_USAGE_WINDOW_MS: i64 = 86_400_000;

// ---------------------------------------------------------------- views --

/// An RPC key as the API shows it: never its secret or hash. An empty list
/// means "no restriction" on that axis.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RpcKeyView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// Public lookup prefix (the `hrpc_<prefix>_…` part); identifies the key
    /// in listings and logs.
    pub prefix: String,
    pub plan: String,
    /// Chains the key may call.
    pub chains: Vec<String>,
    /// Methods or `prefix_*` patterns the key may call.
    pub allowed_methods: Vec<String>,
    /// Methods or patterns refused even if allowed.
    pub denied_methods: Vec<String>,
    /// Client addresses or CIDR blocks (IPv4 or IPv6).
    pub ip_allow: Vec<String>,
    /// Browser origins (`https://app.example.com`, `https://*.example.com`).
    pub origin_allow: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revoked_at: Option<String>,
    /// Rises at every change.
    pub version: i64,
}

impl From<&RpcKey> for RpcKeyView {
    fn from(k: &RpcKey) -> Self {
        Self {
            id: k.id.0,
            org_id: k.org_id.0,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            plan: k.plan.clone(),
            chains: k.scope.chains.clone(),
            allowed_methods: k.scope.allowed_methods.clone(),
            denied_methods: k.scope.denied_methods.clone(),
            ip_allow: k.scope.ip_allow.clone(),
            origin_allow: k.scope.origin_allow.clone(),
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
            revoked_at: k.revoked_at.map(rfc3339),
            version: k.version,
        }
    }
}

/// A newly created RPC key: the only response that ever carries its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedRpcKey {
    #[serde(flatten)]
    pub view: RpcKeyView,
    /// The full key (`hrpc_…`), for RPC URLs like
    /// `{edge}/{chain}/v1/{key}`. Shown once; Hood keeps only its hash.
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRpcKeyRequest {
    #[schema(schema_with = crate::schemas::display_name)]
    pub name: String,
    /// A plan of the installation (see `GET /api/v1/rpc-plans`).
    pub plan: String,
    /// Chains the key may call (empty: all).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::slugs)]
    pub chains: Vec<String>,
    #[serde(default)]
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub denied_methods: Vec<String>,
    #[serde(default)]
    pub ip_allow: Vec<String>,
    #[serde(default)]
    pub origin_allow: Vec<String>,
}

/// Any subset of the key's fields; a list given replaces the stored one
/// (an empty list lifts that restriction).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRpcKeyRequest {
    #[schema(schema_with = crate::schemas::optional_display_name)]
    pub name: Option<String>,
    pub plan: Option<String>,
    #[schema(schema_with = crate::schemas::optional_slugs)]
    pub chains: Option<Vec<String>>,
    pub allowed_methods: Option<Vec<String>>,
    pub denied_methods: Option<Vec<String>>,
    pub ip_allow: Option<Vec<String>>,
    pub origin_allow: Option<Vec<String>>,
}

impl UpdateRpcKeyRequest {
    /// True when the request would change nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.plan.is_none()
            && self.chains.is_none()
            && self.allowed_methods.is_none()
            && self.denied_methods.is_none()
            && self.ip_allow.is_none()
            && self.origin_allow.is_none()
    }
}

/// A plan RPC keys can be on: a sustained compute-unit rate per key and
/// chain, with a burst.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RpcPlanView {
    pub name: String,
    pub cu_per_minute: u64,
    pub burst_cu: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Only this RPC key (its id).
    #[param(value_type = Option<Uuid>)]
    pub key: Option<String>,
    /// Only this chain.
    #[param(schema_with = crate::schemas::slug)]
    pub chain: Option<String>,
    /// RFC 3339 or Unix milliseconds; default `to` minus 24 h.
    #[param(schema_with = crate::schemas::instant)]
    pub from: Option<String>,
    /// RFC 3339 or Unix milliseconds; default now.
    #[param(schema_with = crate::schemas::instant)]
    pub to: Option<String>,
    /// Bucket width (default hour).
    #[param(schema_with = crate::schemas::granularity)]
    pub granularity: Option<String>,
}

/// One rollup row: one key's use of one method on one chain in one bucket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageRowView {
    pub bucket_start: String,
    pub key_id: Uuid,
    pub chain: String,
    pub method: String,
    pub requests: i64,
    pub compute_units: i64,
    /// Requests that did not end `ok` (RPC errors, rate limited, denied,
    /// upstream errors).
    pub errors: i64,
    /// Mean latency of the bucket's requests, in microseconds.
    pub avg_latency_us: i64,
}

impl From<&UsageRollup> for UsageRowView {
    fn from(r: &UsageRollup) -> Self {
        Self {
            bucket_start: rfc3339(r.bucket_start),
            key_id: r.key_id.0,
            chain: r.chain.clone(),
            method: r.method.clone(),
            requests: r.requests,
            compute_units: r.compute_units,
            errors: r.errors,
            avg_latency_us: if r.requests > 0 {
                r.latency_us_sum / r.requests
            } else {
                0
            },
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub compute_units: i64,
    pub errors: i64,
}

/// Usage in the buckets overlapping `[from, to)`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Start of the first bucket (the requested `from`, floored).
    pub from: String,
    pub to: String,
    /// hour | day
    pub granularity: String,
    /// Ordered by bucket, key, chain, method.
    pub rows: Vec<UsageRowView>,
    pub totals: UsageTotals,
}

// ----------------------------------------------------------- validation --

/// A domain rule's message without its leading `field: `.
fn field_error(e: &RpcConfigError) -> FieldError {
    let field = e.field();
    let text = e.to_string();
    let message = text
        .strip_prefix(field)
        .and_then(|t| t.strip_prefix(": "))
        .unwrap_or(&text)
        .to_owned();
    FieldError::new(field, message)
}

/// Removes repeated entries, keeping the first of each.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn normalized(scope: KeyScope) -> KeyScope {
    KeyScope {
        chains: dedup(scope.chains),
        allowed_methods: dedup(scope.allowed_methods),
        denied_methods: dedup(scope.denied_methods),
        ip_allow: dedup(scope.ip_allow),
        origin_allow: dedup(scope.origin_allow),
    }
}

/// Every problem of a key's name, plan and scope, each naming its field.
fn check_key(state: &AppState, name: &str, plan: &str, scope: &KeyScope) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Err(e) = validate::display_name("name", name) {
        errors.push(e);
    }
    if state.plans.get(plan).is_none() {
        errors.push(FieldError::new(
            "plan",
            format!(
                "unknown plan `{plan}` (expected one of: {})",
                state.plans.names().join(", ")
            ),
        ));
    }
    errors.extend(scope.problems().iter().map(field_error));
    for chain in &scope.chains {
        if validate::slug("chains", chain).is_ok() && state.chains.get(chain).is_none() {
            errors.push(FieldError::new(
                "chains",
                format!("unknown chain `{chain}` (see GET /api/v1/chains)"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn revoked_conflict() -> ApiError {
    ApiError::Conflict("the RPC key is revoked; create a new one".into())
}

// ------------------------------------------------------------- handlers --

#[utoipa::path(post, path = "/api/v1/rpc-keys", tag = "rpc-keys", request_body = CreateRpcKeyRequest,
    responses((status = 201, body = CreatedRpcKey)),
    security(("bearer" = ["manage_keys"])))]
/// Creates an RPC key for the caller's organization. The key is in this
/// response only.
pub async fn create_rpc_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateRpcKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageKeys)?;
    let scope = normalized(KeyScope {
        chains: req.chains,
        allowed_methods: req.allowed_methods,
        denied_methods: req.denied_methods,
        ip_allow: req.ip_allow,
        origin_allow: req.origin_allow,
    });
    check_key(&state, &req.name, &req.plan, &scope)?;
    let now = now();
    let generated = generate_rpc_key();
    let key = RpcKey {
        id: RpcKeyId::from_uuid(Uuid::now_v7()),
        org_id: caller.org_id,
        name: req.name.trim().to_owned(),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        plan: req.plan,
        scope,
        created_at: now,
        updated_at: now,
        revoked_at: None,
        version: 1,
    };
    state.store.create_rpc_key(&key).await?;
    tracing::info!(key_id = %key.id, prefix = %key.prefix, plan = %key.plan, by = %caller.user_id, "RPC key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedRpcKey {
            view: RpcKeyView::from(&key),
            key: generated.token,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/rpc-keys", tag = "rpc-keys",
    responses((status = 200, body = Page<RpcKeyView>)), security(("bearer" = ["read"])))]
/// The organization's RPC keys (revoked ones too), newest first.
pub async fn list_rpc_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<RpcKeyView>>> {
    caller.require(Permission::Read)?;
    let keys = state.store.list_rpc_keys(caller.org_id).await?;
    Ok(Json(Page {
        items: keys.iter().map(RpcKeyView::from).collect(),
    }))
}

async fn visible_key(state: &AppState, caller: &Caller, id: RpcKeyId) -> ApiResult<RpcKey> {
    caller.require(Permission::Read)?;
    state
        .store
        .get_rpc_key(caller.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("RPC key"))
}

#[utoipa::path(get, path = "/api/v1/rpc-keys/{key_id}", tag = "rpc-keys",
    params(("key_id" = Uuid, Path)), responses((status = 200, body = RpcKeyView)),
    security(("bearer" = ["read"])))]
pub async fn get_rpc_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RpcKeyId>,
) -> ApiResult<Json<RpcKeyView>> {
    let key = visible_key(&state, &caller, id).await?;
    Ok(Json(RpcKeyView::from(&key)))
}

#[utoipa::path(patch, path = "/api/v1/rpc-keys/{key_id}", tag = "rpc-keys", request_body = UpdateRpcKeyRequest,
    params(("key_id" = Uuid, Path)),
    responses((status = 200, body = RpcKeyView), (status = 409, description = "The key is revoked")),
    security(("bearer" = ["read", "manage_keys"])))]
/// Changes a live key's name, plan or scope. Edge replicas pick the change
/// up within a second.
pub async fn update_rpc_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RpcKeyId>,
    Json(req): Json<UpdateRpcKeyRequest>,
) -> ApiResult<Json<RpcKeyView>> {
    let mut key = visible_key(&state, &caller, id).await?;
    caller.require(Permission::ManageKeys)?;
    if key.is_revoked() {
        return Err(revoked_conflict());
    }
    if req.is_empty() {
        return Ok(Json(RpcKeyView::from(&key)));
    }
    if let Some(name) = req.name {
        key.name = name;
    }
    if let Some(plan) = req.plan {
        key.plan = plan;
    }
    let scope = &mut key.scope;
    for (slot, new) in [
        (&mut scope.chains, req.chains),
        (&mut scope.allowed_methods, req.allowed_methods),
        (&mut scope.denied_methods, req.denied_methods),
        (&mut scope.ip_allow, req.ip_allow),
        (&mut scope.origin_allow, req.origin_allow),
    ] {
        if let Some(list) = new {
            *slot = list;
        }
    }
    key.scope = normalized(std::mem::take(&mut key.scope));
    check_key(&state, &key.name, &key.plan, &key.scope)?;
    key.name = key.name.trim().to_owned();
    let stored = state
        .store
        .update_rpc_key(&key, now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => revoked_conflict(),
            StoreError::NotFound(_) => ApiError::NotFound("RPC key"),
            other => other.into(),
        })?;
    tracing::info!(key_id = %stored.id, version = stored.version, by = %caller.user_id, "RPC key changed");
    Ok(Json(RpcKeyView::from(&stored)))
}

#[utoipa::path(delete, path = "/api/v1/rpc-keys/{key_id}", tag = "rpc-keys",
    params(("key_id" = Uuid, Path)),
    responses((status = 204, description = "The key is revoked (or already was)")),
    security(("bearer" = ["manage_keys"])))]
/// Revokes a key fleet-wide at once. Idempotent: revoking again keeps the
/// first revocation time.
pub async fn revoke_rpc_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RpcKeyId>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageKeys)?;
    if !state.store.revoke_rpc_key(caller.org_id, id, now()).await? {
        return Err(ApiError::NotFound("RPC key"));
    }
    tracing::info!(key_id = %id, by = %caller.user_id, "RPC key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/rpc-plans", tag = "rpc-keys",
    responses((status = 200, body = Page<RpcPlanView>)), security(("bearer" = ["read"])))]
/// The plans RPC keys can be on, cheapest first.
pub async fn list_rpc_plans(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<RpcPlanView>>> {
    caller.require(Permission::Read)?;
    Ok(Json(Page {
        items: state
            .plans
            .plans()
            .iter()
            .map(|p| RpcPlanView {
                name: p.name.clone(),
                cu_per_minute: p.cu_per_minute,
                burst_cu: p.burst_cu,
            })
            .collect(),
    }))
}

/// An instant given as RFC 3339 or as (possibly negative) Unix milliseconds.
pub(crate) fn parse_instant(field: &'static str, raw: &str) -> Result<Timestamp, FieldError> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|_| FieldError::new(field, "is out of range for Unix milliseconds"));
    }
    parse_rfc3339(raw).ok_or_else(|| {
        FieldError::new(
            field,
            "must be an RFC 3339 instant (2025-01-31T00:00:00Z) or Unix milliseconds",
        )
    })
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, body = UsageView),
        (status = 404, description = "`key` names no RPC key of the organization")),
    security(("bearer" = ["read"])))]
/// RPC usage of the organization in hourly or daily buckets, with totals.
/// The window is at most 31 days at hourly and 400 days at daily
/// granularity.
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<UsageParams>,
) -> ApiResult<Json<UsageView>> {
    caller.require(Permission::Read)?;
    let mut errors = Vec::new();
    let key = match p.key.as_deref() {
        None => None,
        Some(raw) => match parse_id::<RpcKeyId>(raw) {
            Some(k) => Some(k),
            None => {
                errors.push(FieldError::new("key", format!("`{raw}` is not a valid id")));
                None
            }
        },
    };
    let chain = match p.chain.as_deref() {
        None => None,
        Some(c) => {
            if let Err(e) = validate::slug("chain", c) {
                errors.push(e);
            }
            Some(c.to_owned())
        }
    };
    let granularity = match p.granularity.as_deref() {
        None => Granularity::Hour,
        Some(raw) => raw.parse::<Granularity>().unwrap_or_else(|_| {
            errors.push(FieldError::new("granularity", "must be hour or day"));
            Granularity::Hour
        }),
    };
    let mut instant = |field: &'static str, raw: Option<&str>| match raw {
        None => None,
        Some(raw) => parse_instant(field, raw).map_err(|e| errors.push(e)).ok(),
    };
    let to_given = instant("to", p.to.as_deref());
    let from_given = instant("from", p.from.as_deref());
    let to = to_given.unwrap_or_else(now);
    let from = from_given.unwrap_or_else(|| {
        Timestamp::from_millis(to.millis().saturating_sub(DEFAULT_USAGE_WINDOW_MS))
    });
    if errors.is_empty() {
        let max = match granularity {
            Granularity::Hour => MAX_HOURLY_WINDOW_MS,
            Granularity::Day => MAX_DAILY_WINDOW_MS,
        };
        if from >= to {
            errors.push(FieldError::new("to", "must be after `from`"));
        } else if to.millis().saturating_sub(from.millis()) > max {
            errors.push(FieldError::new(
                "from",
                match granularity {
                    Granularity::Hour => {
                        "the window may span at most 31 days at hourly granularity (use granularity=day)"
                    }
                    Granularity::Day => "the window may span at most 400 days",
                },
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let Some(k) = key {
        // Tenancy: another org's key is as unknown as a missing one.
        visible_key(&state, &caller, k).await?;
    }
    let from = Timestamp::from_millis(granularity.bucket_start(from.millis()));
    let rows = state
        .store
        .usage_rollups(&UsageQuery {
            org_id: caller.org_id,
            key_id: key,
            chain,
            from,
            to,
            granularity,
        })
        .await?;
    let mut totals = UsageTotals::default();
    for r in &rows {
        totals.requests = totals.requests.saturating_add(r.requests);
        totals.compute_units = totals.compute_units.saturating_add(r.compute_units);
        totals.errors = totals.errors.saturating_add(r.errors);
    }
    Ok(Json(UsageView {
        from: rfc3339(from),
        to: rfc3339(to),
        granularity: granularity.as_str().to_owned(),
        rows: rows.iter().map(UsageRowView::from).collect(),
        totals,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_or_unix_ms() {
        assert_eq!(
            parse_instant("from", "1700000000000"),
            Ok(Timestamp::from_millis(1_700_000_000_000))
        );
        assert_eq!(parse_instant("from", "-5"), Ok(Timestamp::from_millis(-5)));
        assert_eq!(
            parse_instant("from", "2023-11-14T22:13:20Z"),
            Ok(Timestamp::from_millis(1_700_000_000_000))
        );
        assert_eq!(
            parse_instant("from", "2023-11-14T23:13:20.5+01:00"),
            Ok(Timestamp::from_millis(1_700_000_000_500))
        );
        for bad in [
            "",
            "-",
            "yesterday",
            "99999999999999999999",
            "2023-11-14",
            "1.5",
        ] {
            let e = parse_instant("to", bad).unwrap_err();
            assert_eq!(e.field, "to", "{bad}");
        }
    }

    #[test]
    fn domain_messages_lose_their_field_prefix() {
        let e = RpcConfigError::InvalidChain {
            value: "Bad".into(),
        };
        let f = field_error(&e);
        assert_eq!(f.field, "chains");
        assert!(f.message.starts_with("`Bad`"), "{}", f.message);
        let e = RpcConfigError::ZeroPrice { method: "x".into() };
        assert_eq!(field_error(&e).message, e.to_string());
    }

    #[test]
    fn lists_are_deduplicated_in_order() {
        assert_eq!(
            dedup(vec!["b".into(), "a".into(), "b".into()]),
            vec!["b".to_owned(), "a".to_owned()]
        );
    }
}
