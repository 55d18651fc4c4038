//! Multipart uploads through Hood's API: a large object sent in parts,
//! resumable (the upload lists the parts it holds, so a client that lost
//! its connection sends only the rest), composed into one object at
//! completion. The same uploads as S3's multipart (`hood-s3`).

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{parse_id, Json, Path, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::storage::{
    declared_length, ns_scope, storage, NamespaceUsageView, ObjectView, ObjectWrittenView,
};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::scope::Action;
use hood_domain::storage::{part_number, MultipartUpload, UploadPart};
use hood_domain::UploadId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/storage/namespaces/{name}/uploads",
            post(create_upload).get(list_uploads),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/uploads/{upload_id}",
            get(get_upload).delete(abort_upload),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/uploads/{upload_id}/parts/{number}",
            put(put_part).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/storage/namespaces/{name}/uploads/{upload_id}/complete",
            post(complete_upload),
        )
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    /// The object's key once completed.
    #[schema(min_length = 1, max_length = 1024)]
    pub key: String,
    /// The object's content type (default `application/octet-stream`).
    pub content_type: Option<String>,
}

/// One part an upload holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadPartView {
    #[schema(minimum = 1, maximum = 10000)]
    pub number: u32,
    pub size: u64,
    /// Hex SHA-256 of the part (its ETag).
    pub sha256: String,
}

impl From<&UploadPart> for UploadPartView {
    fn from(p: &UploadPart) -> Self {
        Self {
            number: p.number,
            size: p.size,
            sha256: p.sha256.clone(),
        }
    }
}

/// A multipart upload in progress and the parts it holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadView {
    pub id: Uuid,
    pub key: String,
    pub content_type: String,
    pub created_at: String,
    pub parts: Vec<UploadPartView>,
}

impl UploadView {
    fn new(upload: &MultipartUpload, parts: &[UploadPart]) -> Self {
        Self {
            id: *upload.id.as_uuid(),
            key: upload.key.to_string(),
            content_type: upload.content_type.clone(),
            created_at: rfc3339(upload.created_at),
            parts: parts.iter().map(UploadPartView::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListUploadsQuery {
    /// Only uploads of keys starting with this.
    pub prefix: Option<String>,
    /// Uploads of keys after this one (the previous page's
    /// `next_after_key`).
    pub after_key: Option<String>,
    /// With `after_key`: that key's uploads after this one too (the
    /// previous page's `next_after_upload`).
    pub after_upload: Option<Uuid>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// An upload in progress, without its parts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadSummaryView {
    pub id: Uuid,
    pub key: String,
    pub content_type: String,
    pub created_at: String,
}

/// A page of uploads in progress, by key then upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadPageView {
    pub items: Vec<UploadSummaryView>,
    /// More follow: pass these as `after_key` and `after_upload`.
    pub next_after_key: Option<String>,
    pub next_after_upload: Option<Uuid>,
}

/// A part named for completion.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPartRequest {
    #[schema(minimum = 1, maximum = 10000)]
    pub number: u32,
    /// The part's SHA-256 as its upload answered; checked when given.
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUploadRequest {
    /// The parts to compose, numbers ascending; every part but the last
    /// holds at least 5 MiB.
    pub parts: Vec<CompletedPartRequest>,
}

#[derive(Debug, Deserialize)]
pub struct UploadPath {
    pub name: String,
    pub upload_id: String,
}

#[derive(Debug, Deserialize)]
pub struct PartPath {
    pub name: String,
    pub upload_id: String,
    pub number: String,
}

fn upload_id(raw: &str) -> ApiResult<UploadId> {
    parse_id(raw).ok_or_else(|| {
        ApiError::invalid_param("upload_id", format!("`{raw}` is not a valid id (a UUID)"))
    })
}

/// The caller's upload in progress in its active namespace.
async fn upload_of(
    state: &AppState,
    caller: &Caller,
    name: &str,
    raw_id: &str,
) -> ApiResult<(hood_domain::storage::Namespace, MultipartUpload)> {
    let id = upload_id(raw_id)?;
    let storage = storage(state)?;
    let ns = storage.active_namespace(caller.org_id, name).await?;
    let upload = storage.upload(&ns, &id.to_string()).await?;
    Ok((ns, upload))
}

#[utoipa::path(post, path = "/api/v1/storage/namespaces/{name}/uploads", tag = "storage",
    params(("name" = String, Path)),
    request_body = CreateUploadRequest,
    responses((status = 201, body = UploadView, description = "Started; send parts, then complete it"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Starts a multipart upload of one object.
pub async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<CreateUploadRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(Permission::Operate, ns_scope(&name), Action::Create)?;
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &name).await?;
    let upload = storage
        .create_upload(&ns, &body.key, body.content_type.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(UploadView::new(&upload, &[]))))
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces/{name}/uploads", tag = "storage",
    params(("name" = String, Path), ListUploadsQuery),
    responses((status = 200, body = UploadPageView, description = "Uploads neither completed nor aborted yet"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// A namespace's uploads in progress, by key then upload, a page at a time
/// (to resume one whose id was lost, or to abort it).
pub async fn list_uploads(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListUploadsQuery>,
) -> ApiResult<Json<UploadPageView>> {
    caller.require_grant(Permission::Read, ns_scope(&name), Action::Read)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    if q.after_upload.is_some() && q.after_key.is_none() {
        return Err(ApiError::invalid(
            "after_upload",
            "goes with after_key (both from the previous page)",
        ));
    }
    let storage = storage(&state)?;
    let ns = storage.active_namespace(caller.org_id, &name).await?;
    let page = storage
        .list_uploads(
            &ns,
            q.prefix.as_deref().unwrap_or_default(),
            q.after_key,
            q.after_upload.map(UploadId::from_uuid),
            limit,
        )
        .await?;
    Ok(Json(UploadPageView {
        next_after_key: page.next.as_ref().map(|(key, _)| key.clone()),
        next_after_upload: page.next.as_ref().map(|(_, id)| *id.as_uuid()),
        items: page
            .uploads
            .iter()
            .map(|u| UploadSummaryView {
                id: *u.id.as_uuid(),
                key: u.key.to_string(),
                content_type: u.content_type.clone(),
                created_at: rfc3339(u.created_at),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/storage/namespaces/{name}/uploads/{upload_id}", tag = "storage",
    params(("name" = String, Path), ("upload_id" = Uuid, Path)),
    responses((status = 200, body = UploadView, description = "The upload and the parts it holds (what a resumed upload need not send again)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read"])))]
/// An upload in progress and its parts.
pub async fn get_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<UploadPath>,
) -> ApiResult<Json<UploadView>> {
    caller.require_grant(Permission::Read, ns_scope(&path.name), Action::Read)?;
    let (_, upload) = upload_of(&state, &caller, &path.name, &path.upload_id).await?;
    let parts = storage(&state)?.upload_parts(&upload).await?;
    Ok(Json(UploadView::new(&upload, &parts)))
}

#[utoipa::path(put, path = "/api/v1/storage/namespaces/{name}/uploads/{upload_id}/parts/{number}", tag = "storage",
    params(("name" = String, Path), ("upload_id" = Uuid, Path),
        ("number" = u32, Path, minimum = 1, maximum = 10000, description = "The part's number: parts compose in number order")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The part's bytes, streamed"),
    responses((status = 200, body = UploadPartView, description = "Stored (replacing an earlier part of that number)"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The part is larger than a part may be"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Uploads one part.
pub async fn put_part(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PartPath>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadPartView>> {
    caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Create)?;
    let number = path
        .number
        .parse::<i64>()
        .ok()
        .map(part_number)
        .unwrap_or_else(|| {
            Err(hood_domain::validate::FieldError::new(
                "number",
                "a part number is between 1 and 10000",
            ))
        })
        .map_err(|e| ApiError::invalid_param("number", e.message))?;
    let (_, upload) = upload_of(&state, &caller, &path.name, &path.upload_id).await?;
    let part = storage(&state)?
        .put_part(
            &upload,
            number,
            declared_length(&headers)?,
            body.into_data_stream(),
        )
        .await?;
    Ok(Json(UploadPartView::from(&part)))
}

#[utoipa::path(post, path = "/api/v1/storage/namespaces/{name}/uploads/{upload_id}/complete", tag = "storage",
    params(("name" = String, Path), ("upload_id" = Uuid, Path)),
    request_body = CompleteUploadRequest,
    responses(
        (status = 201, body = ObjectWrittenView, description = "Composed under a new key"),
        (status = 200, body = ObjectWrittenView, description = "Composed, replacing the object under the key"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The namespace's object quota is reached"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The namespace's byte quota would be exceeded"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Composes the named parts, in order, into the object and ends the upload.
pub async fn complete_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<UploadPath>,
    Json(body): Json<CompleteUploadRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Create)?;
    let (ns, upload) = upload_of(&state, &caller, &path.name, &path.upload_id).await?;
    let requested: Vec<(u32, Option<String>)> = body
        .parts
        .into_iter()
        .map(|p| (p.number, p.sha256))
        .collect();
    let written = storage(&state)?
        .complete_upload(&ns, &upload, &requested)
        .await?;
    let status = if written.replaced.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ObjectWrittenView {
            object: ObjectView::from(&written.object),
            replaced: written.replaced.is_some(),
            usage: NamespaceUsageView {
                bytes: written.usage.bytes,
                objects: written.usage.objects,
            },
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/storage/namespaces/{name}/uploads/{upload_id}", tag = "storage",
    params(("name" = String, Path), ("upload_id" = Uuid, Path)),
    responses((status = 204, description = "Aborted: its parts' bytes are deleted"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This server has no storage object store")),
    security(("bearer" = ["read", "operate"])))]
/// Aborts an upload.
pub async fn abort_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<UploadPath>,
) -> ApiResult<StatusCode> {
    caller.require_grant(Permission::Operate, ns_scope(&path.name), Action::Create)?;
    let (_, upload) = upload_of(&state, &caller, &path.name, &path.upload_id).await?;
    storage(&state)?.abort_upload(&upload).await?;
    Ok(StatusCode::NO_CONTENT)
}
