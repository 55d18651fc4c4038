//! Billing's meters: the generic ingest of meter events (idempotent by
//! event id, in batches) and a meter's readings over a window, aggregated
//! and grouped by dimension.

use crate::auth::Caller;
use crate::clock::{now, rfc3339};
use crate::extract::{Json, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::edge::parse_instant;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use axum::Router;
use hood_domain::billing::{aggregate, Aggregation, MeterEvent};
use hood_domain::identity::Permission;
use hood_domain::validate::FieldError;
use hood_domain::{OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most events in one ingest request.
pub const MAX_METER_BATCH: usize = 1000;
/// Longest window of a readings query.
pub const MAX_READINGS_WINDOW_MS: i64 = 400 * 86_400_000;

/// Largest ingest request: a full batch of events with long ids and
/// many dimensions (the API's usual limit is for small requests).
pub const METER_BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/meters/{meter}/readings", get(readings))
}

/// The ingest route, with its own body limit.
pub fn ingest_router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/meter-events",
        post(ingest).layer(DefaultBodyLimit::max(METER_BODY_LIMIT_BYTES)),
    )
}

/// One metered event as producers send it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeterEventInput {
    /// The producer's id: sending the same id again is a no-op.
    #[schema(min_length = 1, max_length = 200)]
    pub id: String,
    /// The meter, e.g. `gpu_minutes`.
    #[schema(min_length = 1, max_length = 200)]
    pub meter: String,
    /// Dimension name → value (at most 16).
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub quantity: u64,
    /// When it happened (RFC 3339 or Unix milliseconds); default: now.
    #[schema(schema_with = crate::schemas::optional_instant)]
    pub at: Option<String>,
}

/// A batch of events for one organization.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeterEventBatch {
    /// The organization the events bill (default: the caller's).
    pub org_id: Option<Uuid>,
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<MeterEventInput>,
}

/// What an ingest stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeterIngestView {
    /// Events stored by this request.
    pub accepted: u64,
    /// Events whose id was stored before (or repeated in the batch).
    pub duplicates: u64,
}

#[utoipa::path(post, path = "/api/v1/meter-events", tag = "billing", request_body = MeterEventBatch,
    responses((status = 200, body = MeterIngestView, description = "Stored, every event once: retrying a batch is safe"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is larger than 4 MiB")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Ingests meter events (platform services: the events charge money). The
/// whole batch is checked before anything is stored; one transaction.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Json(batch): Json<MeterEventBatch>,
) -> ApiResult<Json<MeterIngestView>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let org = batch.org_id.map(OrgId::from_uuid).unwrap_or(caller.org_id);
    let mut errors = Vec::new();
    if batch.events.is_empty() || batch.events.len() > MAX_METER_BATCH {
        errors.push(FieldError::new(
            "events",
            format!("must hold 1 to {MAX_METER_BATCH} events"),
        ));
    }
    let now = now();
    let mut events = Vec::with_capacity(batch.events.len());
    for (i, input) in batch.events.into_iter().enumerate() {
        let at = match input.at.as_deref() {
            None => now,
            Some(raw) => match parse_instant("at", raw) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(FieldError::new(
                        "events",
                        format!("event {i}: {}", e.message),
                    ));
                    continue;
                }
            },
        };
        let event = MeterEvent {
            id: input.id,
            meter: input.meter,
            dimensions: input.dimensions,
            quantity: input.quantity,
            at,
        };
        match event.validate() {
            Ok(()) => events.push(event),
            Err(e) => errors.push(FieldError::new("events", format!("event {i}: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if batch.org_id.is_some() {
        state.store.get_org(org).await?.ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new("org_id", "no such organization")])
        })?;
    }
    let out = state.store.insert_meter_events(org, &events, now).await?;
    Ok(Json(MeterIngestView {
        accepted: out.accepted,
        duplicates: out.duplicates,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadingsQuery {
    /// Window start (RFC 3339 or Unix milliseconds); default: `to` minus
    /// 30 days.
    #[param(schema_with = crate::schemas::instant)]
    pub from: Option<String>,
    /// Window end, exclusive; default: now.
    #[param(schema_with = crate::schemas::instant)]
    pub to: Option<String>,
    /// sum (default) | count | max | latest
    #[param(schema_with = crate::schemas::aggregation)]
    pub aggregation: Option<String>,
    /// Dimensions to group by, comma-separated (default: none, one reading).
    pub group_by: Option<String>,
}

/// One group's aggregated quantity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadingView {
    pub dimensions: BTreeMap<String, String>,
    pub quantity: u64,
}

/// A meter's readings over a window.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeterReadingsView {
    pub meter: String,
    pub from: String,
    pub to: String,
    pub aggregation: String,
    pub group_by: Vec<String>,
    pub readings: Vec<ReadingView>,
}

#[utoipa::path(get, path = "/api/v1/meters/{meter}/readings", tag = "billing",
    params(("meter" = String, Path), ReadingsQuery),
    responses((status = 200, body = MeterReadingsView)), security(("bearer" = ["read_billing"])))]
/// The organization's readings of one meter over a window.
pub async fn readings(
    State(state): State<AppState>,
    caller: Caller,
    Path(meter): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> ApiResult<Json<MeterReadingsView>> {
    caller.require(Permission::ReadBilling)?;
    let mut errors = Vec::new();
    let to = match q.to.as_deref() {
        None => now(),
        Some(raw) => parse_instant("to", raw).unwrap_or_else(|e| {
            errors.push(e);
            now()
        }),
    };
    let from = match q.from.as_deref() {
        None => Timestamp::from_millis(to.millis().saturating_sub(30 * 86_400_000)),
        Some(raw) => parse_instant("from", raw).unwrap_or_else(|e| {
            errors.push(e);
            to
        }),
    };
    let aggregation = match q.aggregation.as_deref() {
        None => Aggregation::Sum,
        Some(raw) => Aggregation::parse(raw).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "aggregation",
                "must be sum, count, max or latest",
            ));
            Aggregation::Sum
        }),
    };
    let group_by: Vec<String> = q
        .group_by
        .as_deref()
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if group_by.len() > hood_domain::billing::meter::MAX_DIMENSIONS {
        errors.push(FieldError::new("group_by", "at most 16 dimensions"));
    }
    if errors.is_empty() {
        if from >= to {
            errors.push(FieldError::new("to", "must be after `from`"));
        } else if to.millis() - from.millis() > MAX_READINGS_WINDOW_MS {
            errors.push(FieldError::new(
                "from",
                "the window may span at most 400 days",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let events = state
        .store
        .meter_events(caller.org_id, &meter, from, to)
        .await?;
    let readings = aggregate(&meter, &events, aggregation, &group_by)
        .into_iter()
        .map(|r| ReadingView {
            dimensions: r.dimensions,
            quantity: r.quantity,
        })
        .collect();
    Ok(Json(MeterReadingsView {
        meter,
        from: rfc3339(from),
        to: rfc3339(to),
        aggregation: aggregation.as_str().to_owned(),
        group_by,
        readings,
    }))
}
