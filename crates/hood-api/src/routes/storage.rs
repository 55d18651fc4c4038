//! Storage namespaces and their objects over Hood's API: namespaces
//! (create, list, show, delete), objects (streamed upload, download whole
//! or by range, listing by prefix with paging, delete), presigned URLs,
//! and anonymous reads of public namespaces. Served when the server has a
//! storage object store (`AppState::storage`), else 503.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Path, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::allocations::audit_context;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::scope::{storage_namespace, Action, Scope, ScopeError};
use hood_domain::storage::{Namespace, QuotaExceeded, StoredObject, Visibility};
use hood_domain::{NamespaceId, OrgId};
use hood_storage::{NewNamespace, Storage, StorageError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/storage/namespaces",
            get(list_namespaces).post(create_namespace),
        )
        .route(
            "/api/v1/storage/namespaces/{name}",
            get(get_namespace).delete(delete_namespace),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/objects",
            get(list_objects),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/objects/{*key}",
            get(get_object)
                .put(put_object)
                .delete(delete_object)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/presign/{*key}",
            axum::routing::post(presign_object),
        )
        .route(
            "/api/v1/storage/presigned/{namespace_id}/{*key}",
            get(get_presigned)
                .put(put_presigned)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/storage/public/{org_id}/{name}/{*key}",
            get(get_public),
        )
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(f) => ApiError::Validation(vec![f]),
            StorageError::NotFound(what) => ApiError::NotFound(what),
            StorageError::Conflict(m) => ApiError::Conflict(m),
            StorageError::Quota(q @ QuotaExceeded::Bytes { .. }) => {
                ApiError::QuotaExceeded(q.to_string())
            }
            StorageError::Quota(q @ QuotaExceeded::Objects { .. }) => {
                ApiError::Conflict(q.to_string())
            }
            StorageError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            StorageError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable { size },
            StorageError::Presign(p) => ApiError::Forbidden(p.to_string()),
            StorageError::Completion(c) => ApiError::BadRequest(c.to_string()),
            StorageError::Body(m) => ApiError::BadRequest(format!("the upload ended early: {m}")),
            StorageError::Store(s) => s.into(),
            StorageError::Object(o) => ApiError::Internal(format!("storage object store: {o}")),
        }
    }
}

/// An object key as URL path segments: each segment percent-encoded, the
/// `/` between them kept (what the object routes' `{*key}` reads back).
pub fn key_path(key: &str) -> String {
    key.split('/')
        .map(|segment| {
            form_urlencoded::byte_serialize(segment.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The scope of one namespace, for [`Caller::may`] and
/// [`Caller::require_grant`].
pub(crate) fn ns_scope(name: &str) -> impl FnOnce(&str) -> Result<Scope, ScopeError> + '_ {
    move |org| storage_namespace(org, name)
}

pub(crate) fn storage(state: &AppState) -> ApiResult<&Storage> {
    state.storage.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "this server has no storage object store (set HOOD_STORAGE_URL)".into(),
        )
    })
}

/// A namespace's limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceQuotaView {
    pub max_bytes: u64,
    pub max_objects: u64,
}

/// What a namespace holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceUsageView {
    pub bytes: u64,
    pub objects: u64,
}

/// A storage namespace (an S3 bucket).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceView {
    pub id: Uuid,
    pub name: String,
    /// private | public (anonymous read)
    pub visibility: String,
    /// active | deleting (its objects are being removed)
    pub state: String,
    pub quota: NamespaceQuotaView,
    pub usage: NamespaceUsageView,
    pub created_at: String,
}

impl From<&Namespace> for NamespaceView {
    fn from(n: &Namespace) -> Self {
        Self {
            id: *n.id.as_uuid(),
            name: n.name.to_string(),
            visibility: n.visibility.as_str().to_owned(),
            state: n.state.as_str().to_owned(),
            quota: NamespaceQuotaView {
                max_bytes: n.quota.max_bytes,
                max_objects: n.quota.max_objects,
            },
            usage: NamespaceUsageView {
                bytes: n.usage.bytes,
                objects: n.usage.objects,
            },
            created_at: rfc3339(n.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    /// 3–63 characters of `a-z`, `0-9` and `-`, starting and ending with a
    /// letter or digit; unique in the organization.
    #[schema(
        min_length = 3,
        max_length = 63,
        pattern = "^[a-z0-9][a-z0-9-]*[a-z0-9]$"
    )]
    pub name: String,
    /// private (default) | public
    pub visibility: Option<String>,
    /// The byte quota (default: the server's).
    #[schema(minimum = 1)]
    pub max_bytes: Option<u64>,
    /// The object quota (default: the server's).
    #[schema(minimum = 1)]
    pub max_objects: Option<u64>,
}

/// An object's metadata.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObjectView {
    pub key: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes (also the ETag).
    pub sha256: String,
    pub content_type: String,
    pub created_at: String,
}

impl From<&StoredObject> for ObjectView {
    fn from(o: &StoredObject) -> Self {
        Self {
            key: o.key.to_string(),
            size: o.size,
            sha256: o.sha256.clone(),
            content_type: o.content_type.clone(),
            created_at: rfc3339(o.created_at),
        }
    }
}

/// A page of objects in key order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObjectPageView {
    pub items: Vec<ObjectView>,
    /// With `delimiter`: the common prefixes ("folders") below `prefix`,
    /// each ending with the delimiter; else empty.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Present when more follow: pass it as `after` for the next page.
    pub next_after: Option<String>,
}

/// A stored object and what the namespace holds now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObjectWrittenView {
    pub object: ObjectView,
    /// An object under the same key was replaced.
    pub replaced: bool,
    pub usage: NamespaceUsageView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsQuery {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Fold keys that go on past this string after the prefix into one
    /// common prefix each (`/`: list one folder level), S3's rule.
    #[param(min_length = 1, max_length = 16)]
    pub delimiter: Option<String>,
    /// Keys after this one (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    /// GET (default) or PUT.
    pub method: Option<String>,
    /// How long the URL works (default 3600, at most 604800).
    #[schema(minimum = 1, maximum = 604800)]
    pub expires_in_seconds: Option<u64>,
}

/// A URL that lets anyone holding it do one thing to one object.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PresignedView {
    /// Path and query, relative to the API's address.
    pub url: String,
    pub method: String,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PresignedQuery {
    /// Unix seconds after which the URL is refused.
    pub expires: u64,
    /// The signature `presign` returned.
    pub signature: String,
}

#[derive(Debug, Deserialize)]
pub struct ObjectPath {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct PresignedPath {
    pub namespace_id: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct PublicPath {
    pub org_id: String,
    pub name: String,
    pub key: String,
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces", tag = "storage",
    responses((status = 200, body = crate::views::Page<NamespaceView>),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// The organization's storage namespaces, by name.
pub async fn list_namespaces(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<crate::views::Page<NamespaceView>>> {
    if caller.service_account.is_none() {
        caller.require(Permission::Read)?;
    }
    let items = storage(&state)?.list_namespaces(caller.org_id).await?;
    Ok(Json(crate::views::Page {
        // A service account sees the namespaces it may read.
        items: items
            .iter()
            .filter(|n| caller.may(Permission::Read, ns_scope(n.name.as_str()), Action::Read))
            .map(NamespaceView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/storage/namespaces", tag = "storage",
    request_body = CreateNamespaceRequest,
    responses((status = 201, body = NamespaceView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The organization has a namespace of that name (perhaps still being deleted)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Creates a namespace, with its audit row.
pub async fn create_namespace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateNamespaceRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(Permission::Operate, ns_scope(&body.name), Action::Create)?;
    let storage = storage(&state)?;
    let visibility = body
        .visibility
        .as_deref()
        .map(Visibility::parse)
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e]))?
        .unwrap_or(Visibility::Private);
    let quota = match (body.max_bytes, body.max_objects) {
        (None, None) => None,
        (bytes, objects) => {
            let default = storage.config().default_quota;
            Some(
                hood_domain::storage::Quota::new(
                    bytes.unwrap_or(default.max_bytes),
                    objects.unwrap_or(default.max_objects),
                )
                .map_err(|e| ApiError::Validation(vec![e]))?,
            )
        }
    };
    let ns = storage
        .create_namespace(
            caller.org_id,
            NewNamespace {
                name: body.name,
                visibility,
                quota,
            },
            &audit_context(&caller, &headers),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(NamespaceView::from(&ns))))
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces/{name}", tag = "storage",
    params(("name" = String, Path)),
    responses((status = 200, body = NamespaceView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// One namespace, with its quota and usage.
pub async fn get_namespace(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<NamespaceView>> {
    caller.require_grant(Permission::Read, ns_scope(&name), Action::Read)?;
    let ns = storage(&state)?.namespace(caller.org_id, &name).await?;
    Ok(Json(NamespaceView::from(&ns)))
}

#[utoipa::path(delete, path = "/api/v1/storage/namespaces/{name}", tag = "storage",
    params(("name" = String, Path)),
    responses((status = 202, body = NamespaceView, description = "Deleting: it serves nothing more; its objects are removed in the background, then the namespace"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Deletes a namespace and everything in it.
pub async fn delete_namespace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(Permission::Operate, ns_scope(&name), Action::Delete)?;
    let ns = storage(&state)?
        .delete_namespace(caller.org_id, &name, &audit_context(&caller, &headers))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(NamespaceView::from(&ns))))
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces/{name}/objects", tag = "storage",
    params(("name" = String, Path), ListObjectsQuery),
    responses((status = 200, body = ObjectPageView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// A namespace's objects in key order (UTF-8 bytes), a page at a time;
/// with `delimiter`, one folder level: objects and common prefixes.
pub async fn list_objects(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListObjectsQuery>,
) -> ApiResult<Json<ObjectPageView>> {
    caller.require_grant(Permission::Read, ns_scope(&name), Action::Read)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &name).await?;
    if q.delimiter
        .as_deref()
        .is_some_and(|d| d.is_empty() || d.len() > 16)
    {
        return Err(ApiError::invalid("delimiter", "must be 1 to 16 bytes"));
    }
    let page = storage
        .list_folded(
            &ns,
            q.prefix.as_deref().unwrap_or_default(),
            q.delimiter.as_deref(),
            q.after.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(ObjectPageView {
        items: page.objects.iter().map(ObjectView::from).collect(),
        prefixes: page.prefixes,
        next_after: page.next_after,
    }))
}

/// What every object answer carries: stored bytes are whatever a tenant
/// uploaded, served from the console's origin, so a browser must neither
/// guess their type nor run them: `sandbox` gives an HTML object an opaque
/// origin with scripts off, so it cannot act with a visitor's session.
pub const OBJECT_CONTENT_SECURITY_POLICY: &str = "sandbox";

/// The object's bytes as an answer: 200 whole or 206 a range, with its
/// length, type, ETag and `Accept-Ranges`.
async fn object_response(
    storage: &Storage,
    ns: &Namespace,
    key: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let read = storage.read_object(ns, key, range).await?;
    let object = &read.object;
    let (status, length, content_range) = match &read.range {
        Some(r) => (
            StatusCode::PARTIAL_CONTENT,
            r.end - r.start,
            Some(format!(
                "bytes {}-{}/{}",
                r.start,
                r.end.saturating_sub(1),
                object.size
            )),
        ),
        None => (StatusCode::OK, object.size, None),
    };
    let mut response = Response::new(Body::from_stream(read.bytes));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&object.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(OBJECT_CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", object.sha256)) {
        h.insert(header::ETAG, etag);
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces/{name}/objects/{key}", tag = "storage",
    params(("name" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`"),
        ("Range" = Option<String>, Header, description = "One byte range, `bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The whole object (HEAD: only its headers)"),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>, description = "The range asked for, with Content-Range"),
        (status = 416, body = Problem, content_type = "application/problem+json", description = "The range starts beyond the object"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// Downloads an object, whole or one byte range.
pub async fn get_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require_grant(Permission::Read, ns_scope(&path.name), Action::Read)?;
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &path.name).await?;
    object_response(storage, &ns, &path.key, &headers).await
}

pub(crate) fn declared_length(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("Content-Length", "must be a whole number"))
        })
        .transpose()
}

async fn store_object(
    storage: &Storage,
    ns: &Namespace,
    key: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("Content-Type", "must be visible ASCII"))
        })
        .transpose()?;
    let written = storage
        .put_object(
            ns,
            key,
            content_type,
            declared_length(headers)?,
            body.into_data_stream(),
        )
        .await?;
    let status = if written.replaced.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let view = ObjectWrittenView {
        object: ObjectView::from(&written.object),
        replaced: written.replaced.is_some(),
        usage: NamespaceUsageView {
            bytes: written.usage.bytes,
            objects: written.usage.objects,
        },
    };
    let mut response = (status, Json(view)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", written.object.sha256)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[utoipa::path(put, path = "/api/v1/storage/namespaces/{name}/objects/{key}", tag = "storage",
    params(("name" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's bytes, streamed; its Content-Type is kept"),
    responses(
        (status = 201, body = ObjectWrittenView, description = "Stored under a new key"),
        (status = 200, body = ObjectWrittenView, description = "Replaced the object under the key"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The namespace's object quota is reached"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The namespace's byte quota would be exceeded, or the object is larger than the server allows"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Uploads an object (streamed; a new version replaces the old whole).
pub async fn put_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Create)?;
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &path.name).await?;
    store_object(storage, &ns, &path.key, &headers, body).await
}

#[utoipa::path(delete, path = "/api/v1/storage/namespaces/{name}/objects/{key}", tag = "storage",
    params(("name" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`")),
    responses((status = 204, description = "Deleted"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Deletes an object.
pub async fn delete_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ObjectPath>,
) -> ApiResult<StatusCode> {
    caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Delete)?;
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &path.name).await?;
    storage.delete_object(&ns, &path.key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/storage/namespaces/{name}/presign/{key}", tag = "storage",
    params(("name" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`")),
    request_body = PresignRequest,
    responses((status = 200, body = PresignedView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// A URL that lets its holder GET or PUT one object until it expires. A
/// PUT URL needs `operate`.
pub async fn presign_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ObjectPath>,
    Json(body): Json<PresignRequest>,
) -> ApiResult<Json<PresignedView>> {
    let method = body.method.as_deref().unwrap_or("GET");
    if method.eq_ignore_ascii_case("PUT") {
        caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Create)?;
    } else {
        caller.require_grant(Permission::Read, ns_scope(&path.name), Action::Read)?;
    }
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &path.name).await?;
    let signed = storage.presign(
        &ns,
        &path.key,
        method,
        Duration::from_secs(body.expires_in_seconds.unwrap_or(3600)),
    )?;
    let key = key_path(&path.key);
    Ok(Json(PresignedView {
        url: format!(
            "/api/v1/storage/presigned/{}/{key}?expires={}&signature={}",
            signed.namespace_id, signed.expires_unix, signed.signature
        ),
        method: signed.method.to_owned(),
        expires_at: rfc3339(hood_domain::Timestamp::from_millis(
            i64::try_from(signed.expires_unix)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        )),
    }))
}

async fn presigned(
    state: &AppState,
    method: &Method,
    path: &PresignedPath,
    q: &PresignedQuery,
) -> ApiResult<Namespace> {
    let storage = storage(state)?;
    // A malformed id cannot carry a valid signature: refused alike.
    let id = path.namespace_id.parse::<NamespaceId>().map_err(|_| {
        ApiError::Forbidden("the presigned URL's signature does not match this request".into())
    })?;
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    Ok(storage
        .presigned_namespace(id, &path.key, method, q.expires, &q.signature)
        .await?)
}

#[utoipa::path(get, path = "/api/v1/storage/presigned/{namespace_id}/{key}", tag = "storage",
    params(("namespace_id" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`"), PresignedQuery,
        ("Range" = Option<String>, Header, description = "One byte range")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The whole object"),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>, description = "The range asked for"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The URL expired or its signature does not match"),
        (status = 416, body = Problem, content_type = "application/problem+json", description = "The range starts beyond the object"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")))]
/// Downloads an object through a presigned URL (no credentials).
pub async fn get_presigned(
    State(state): State<AppState>,
    method: Method,
    Path(path): Path<PresignedPath>,
    Query(q): Query<PresignedQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ns = presigned(&state, &method, &path, &q).await?;
    object_response(storage(&state)?, &ns, &path.key, &headers).await
}

#[utoipa::path(put, path = "/api/v1/storage/presigned/{namespace_id}/{key}", tag = "storage",
    params(("namespace_id" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`"), PresignedQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's bytes, streamed"),
    responses(
        (status = 201, body = ObjectWrittenView, description = "Stored under a new key"),
        (status = 200, body = ObjectWrittenView, description = "Replaced the object under the key"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The URL expired or its signature does not match"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The namespace's object quota is reached"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The namespace's byte quota would be exceeded"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")))]
/// Uploads an object through a presigned URL (no credentials).
pub async fn put_presigned(
    State(state): State<AppState>,
    method: Method,
    Path(path): Path<PresignedPath>,
    Query(q): Query<PresignedQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ns = presigned(&state, &method, &path, &q).await?;
    store_object(storage(&state)?, &ns, &path.key, &headers, body).await
}

#[utoipa::path(get, path = "/api/v1/storage/public/{org_id}/{name}/{key}", tag = "storage",
    params(("org_id" = String, Path), ("name" = String, Path), ("key" = String, Path, description = "The object's key; may hold `/`"),
        ("Range" = Option<String>, Header, description = "One byte range")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The whole object"),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>, description = "The range asked for"),
        (status = 416, body = Problem, content_type = "application/problem+json", description = "The range starts beyond the object"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")))]
/// Reads an object of a public namespace, anonymously (a private
/// namespace is not found).
pub async fn get_public(
    State(state): State<AppState>,
    Path(path): Path<PublicPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let storage = storage(&state)?;
    let org = path
        .org_id
        .parse::<OrgId>()
        .map_err(|_| ApiError::NotFound("namespace"))?;
    let ns = storage.public_namespace(org, &path.name).await?;
    object_response(storage, &ns, &path.key, &headers).await
}
