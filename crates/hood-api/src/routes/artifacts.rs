//! The artifact store over HTTP: list, show, and push (a raw, streamed
//! request body). Artifacts are installation-wide binaries that hosts pull
//! by name, version and SHA-256, so pushing one is reserved to platform
//! administrators with the `operate` permission; reading the catalog needs
//! only `read`.
//!
//! Wiring: the handlers reach the store through
//! `Extension<Arc<hood_artifacts::ArtifactStore>>` (a layer on the router);
//! without it they answer 503. The push route sets its own body limit
//! ([`hood_artifacts::DEFAULT_MAX_ARTIFACT_BYTES`] unless the store says
//! otherwise), so it must not sit under the router-wide 64 KiB
//! `RequestBodyLimitLayer`.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Query};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hood_artifacts::{names, ArtifactError, ArtifactRecord, ArtifactStore, PushRequest};
use hood_chains::{ChainCatalog, Verify};
use hood_domain::identity::Permission;
use hood_domain::validate::FieldError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Request header carrying the SHA-256 the pushed bytes must hash to.
pub const SHA256_HEADER: &str = "x-hood-sha256";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/artifacts", get(list_artifacts))
        .route(
            "/api/v1/artifacts/{name}/{version}",
            get(get_artifact).put(push_artifact.layer(DefaultBodyLimit::disable())),
        )
}

/// An artifact as the API shows it (the object key stays internal).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    pub name: String,
    pub version: String,
    /// Lowercase hex SHA-256 of the content; hosts verify against it.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    pub content_type: String,
    pub created_at: String,
    /// The user who pushed it.
    pub created_by: Option<Uuid>,
}

impl From<&ArtifactRecord> for ArtifactView {
    fn from(a: &ArtifactRecord) -> Self {
        Self {
            name: a.name.clone(),
            version: a.version.clone(),
            sha256: a.sha256.clone(),
            size: a.size,
            content_type: a.content_type.clone(),
            created_at: rfc3339(a.created_at),
            created_by: a.created_by.map(|u| u.0),
        }
    }
}

/// The answer to a push: the artifact and what the push did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushedArtifactView {
    #[serde(flatten)]
    pub artifact: ArtifactView,
    /// `created` (new artifact), `existing` (already stored, nothing
    /// changed) or `restored` (the catalog had it but the object store had
    /// lost its bytes: they were stored again).
    pub outcome: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only the versions of this artifact.
    #[param(schema_with = crate::schemas::artifact_name)]
    pub name: Option<String>,
}

/// The `{name}/{version}` of an artifact route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ArtifactPath {
    /// Artifact name, e.g. `anvil-linux-amd64`.
    #[param(schema_with = crate::schemas::artifact_name)]
    pub name: String,
    /// Version, e.g. `1.5.1`.
    #[param(schema_with = crate::schemas::artifact_version)]
    pub version: String,
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::Invalid(field) => ApiError::Validation(vec![field]),
            ArtifactError::NotFound { .. } => ApiError::NotFound("artifact"),
            e @ ArtifactError::ChecksumMismatch { .. } => ApiError::BadRequest(e.to_string()),
            e @ ArtifactError::Conflict(_) => ApiError::Conflict(e.to_string()),
            ArtifactError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            e @ ArtifactError::Source(_) => ApiError::BadRequest(e.to_string()),
            ArtifactError::Store(s) => ApiError::from(s),
            other @ (ArtifactError::Object(_)
            | ArtifactError::ObjectMissing { .. }
            | ArtifactError::Corrupt(_)
            | ArtifactError::Config(_)) => ApiError::Internal(other.to_string()),
        }
    }
}

/// The store, or 503 when this process was started without one.
fn store(ext: Option<Extension<Arc<ArtifactStore>>>) -> ApiResult<Arc<ArtifactStore>> {
    ext.map(|Extension(s)| s)
        .ok_or_else(|| ApiError::Unavailable("this server has no artifact store configured".into()))
}

/// `{name}/{version}` path segments, validated (a malformed one is a 400
/// naming it, never a lookup).
fn name_version(path: Result<Path<ArtifactPath>, PathRejection>) -> ApiResult<(String, String)> {
    let Path(ArtifactPath { name, version }) =
        path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut problems = Vec::new();
    if let Err(e) = names::name(&name) {
        problems.push(e);
    }
    if let Err(e) = names::version(&version) {
        problems.push(e);
    }
    if problems.is_empty() {
        Ok((name, version))
    } else {
        Err(ApiError::Validation(problems))
    }
}

#[utoipa::path(get, path = "/api/v1/artifacts", tag = "artifacts", params(ListQuery),
    responses((status = 200, body = Page<ArtifactView>),
        (status = 503, description = "This server has no artifact store")),
    security(("bearer" = ["read"])))]
/// Artifacts in the store, by name, oldest version first.
pub async fn list_artifacts(
    caller: Caller,
    artifacts: Option<Extension<Arc<ArtifactStore>>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<ArtifactView>>> {
    caller.require(Permission::Read)?;
    let artifacts = store(artifacts)?;
    let records = match q.name {
        Some(name) => artifacts.list_versions(&name).await?,
        None => artifacts.list().await?,
    };
    Ok(Json(Page {
        items: records.iter().map(ArtifactView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/artifacts/{name}/{version}", tag = "artifacts", params(ArtifactPath),
    responses((status = 200, body = ArtifactView),
        (status = 503, description = "This server has no artifact store")),
    security(("bearer" = ["read"])))]
/// One artifact's metadata.
pub async fn get_artifact(
    caller: Caller,
    artifacts: Option<Extension<Arc<ArtifactStore>>>,
    path: Result<Path<ArtifactPath>, PathRejection>,
) -> ApiResult<Json<ArtifactView>> {
    caller.require(Permission::Read)?;
    let artifacts = store(artifacts)?;
    let (name, version) = name_version(path)?;
    let record = artifacts.get(&name, &version).await?;
    Ok(Json(ArtifactView::from(&record)))
}

#[utoipa::path(put, path = "/api/v1/artifacts/{name}/{version}", tag = "artifacts",
    params(
        ArtifactPath,
        ("X-Hood-Sha256" = Option<String>, Header, pattern = "^[ \\t]*[0-9a-fA-F]{64}[ \\t]*$",
            description = "SHA-256 the body must hash to; the push is refused otherwise"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The artifact's bytes, streamed"),
    responses(
        (status = 201, body = PushedArtifactView, description = "Stored (`outcome`: `created`)"),
        (status = 200, body = PushedArtifactView, description = "Already recorded with the same content: nothing changed (`existing`), or its missing object stored again (`restored`)"),
        (status = 400, description = "Invalid name, version, checksum or media type; an empty body; or the body does not match X-Hood-Sha256"),
        (status = 409, description = "Taken by other content (artifacts are immutable), or the content differs from the checksum a chain profile pins"),
        (status = 413, description = "The body is larger than the artifact store's limit"),
        (status = 503, description = "This server has no artifact store"),
    ),
    security(("bearer" = ["operate", "platform_admin"])))]
/// Pushes an artifact: the raw request body is streamed to the object
/// store while it is hashed, checked against `X-Hood-Sha256` and against
/// the checksum a chain profile pins for this name and version, then
/// recorded. Re-pushing identical content is a no-op (200, `existing`)
/// unless the object store lost the bytes: then they are stored again
/// (200, `restored`).
pub async fn push_artifact(
    State(state): State<AppState>,
    caller: Caller,
    artifacts: Option<Extension<Arc<ArtifactStore>>>,
    path: Result<Path<ArtifactPath>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Permission::Operate)?;
    caller.require_platform_admin()?;
    let artifacts = store(artifacts)?;
    let (name, version) = name_version(path)?;

    let announced = match headers.get(SHA256_HEADER) {
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::invalid("X-Hood-Sha256", "must be ASCII hex"))?;
            Some(names::sha256("X-Hood-Sha256", text)?)
        }
        None => None,
    };
    if let Some(len) = content_length(&headers) {
        if len > artifacts.max_size() {
            return Err(ArtifactError::TooLarge {
                limit: artifacts.max_size(),
            }
            .into());
        }
    }
    let pin = pinned_sha256(&state.chains, &name, &version)?;
    if let (Some(pin), Some(announced)) = (&pin, &announced) {
        if pin.sha256 != *announced {
            return Err(ApiError::Conflict(format!(
                "X-Hood-Sha256 is {announced}, but {} pins sha256 {} for {name} {version}",
                pin.source, pin.sha256
            )));
        }
    }
    let expected = announced.or_else(|| pin.as_ref().map(|p| p.sha256.clone()));

    let req = PushRequest::new(name.clone(), version.clone())
        .expect_sha256(expected.as_deref())
        .content_type(content_type(&headers)?.as_deref())
        .created_by(Some(caller.user_id));
    let outcome = match artifacts.push_stream(req, body.into_data_stream()).await {
        Ok(o) => o,
        Err(e @ ArtifactError::ChecksumMismatch { .. }) => {
            return Err(match &pin {
                Some(pin) => ApiError::Conflict(format!(
                    "{e}; {} pins this checksum for {name} {version}",
                    pin.source
                )),
                None => e.into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let record = outcome.record();
    tracing::info!(
        artifact = %record.name, version = %record.version, sha256 = %record.sha256,
        size = record.size, outcome = outcome.as_str(), user_id = %caller.user_id,
        "artifact push"
    );
    let view = Json(PushedArtifactView {
        artifact: ArtifactView::from(record),
        outcome: outcome.as_str().to_owned(),
    });
    if outcome.created() {
        let mut resp = (StatusCode::CREATED, view).into_response();
        let location = format!("/api/v1/artifacts/{}/{}", record.name, record.version);
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Ok(resp)
    } else {
        Ok((StatusCode::OK, view).into_response())
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The media type to record. A form encoding is what `curl --data-binary`
/// sends by default, never what an artifact is: treated as unspecified.
fn content_type(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::invalid("content_type", "must be ASCII"))?;
    if v.starts_with("application/x-www-form-urlencoded") {
        return Ok(None);
    }
    names::content_type(v)?;
    Ok(Some(v.to_owned()))
}

/// A checksum a chain definition pins for an artifact.
struct Pin {
    sha256: String,
    /// Which file says so, for the error message.
    source: String,
}

/// The checksum the chain catalog pins for `name`/`version` (a profile
/// binary or an upgrade target with `verify: pinned`), so that a push can
/// only ever store what hosts will accept. A pinned placeholder refuses the
/// push outright: the operator must put the real checksum in first.
fn pinned_sha256(chains: &ChainCatalog, name: &str, version: &str) -> ApiResult<Option<Pin>> {
    let mut pins = Vec::new();
    for chain in chains.iter() {
        for b in &chain.profile.binaries {
            if b.artifact == name && b.version == version && b.verify == Verify::Pinned {
                if let Some(sha) = &b.sha256 {
                    pins.push((sha.clone(), format!("chains/{}/profile.yaml", chain.name)));
                }
            }
        }
        for (id, u) in &chain.upgrades {
            let t = &u.to;
            if t.artifact == name && t.version == version && t.verify == Verify::Pinned {
                if let Some(sha) = &t.sha256 {
                    pins.push((
                        sha.clone(),
                        format!("chains/upgrades/{}/{id}.yaml", chain.name),
                    ));
                }
            }
        }
    }
    let Some((sha, source)) = pins.first().cloned() else {
        return Ok(None);
    };
    if sha == hood_chains::PLACEHOLDER_SHA256 {
        return Err(ApiError::Conflict(format!(
            "{source} pins the placeholder checksum for {name} {version}; put the real SHA-256 of this artifact there first"
        )));
    }
    if let Some((other, other_source)) = pins.iter().find(|(s, _)| *s != sha) {
        return Err(ApiError::Conflict(format!(
            "{source} and {other_source} pin different checksums ({sha}, {other}) for {name} {version}"
        )));
    }
    let sha256 = names::sha256("sha256", &sha).map_err(|e: FieldError| {
        ApiError::Internal(format!("{source}: invalid pinned checksum: {e}"))
    })?;
    Ok(Some(Pin { sha256, source }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn catalog() -> ChainCatalog {
        hood_chains::builtin().unwrap()
    }

    #[test]
    fn at_push_binaries_pin_nothing() {
        assert!(pinned_sha256(&catalog(), "anvil-linux-amd64", "1.5.1")
            .unwrap()
            .is_none());
        assert!(pinned_sha256(&catalog(), "anvil-linux-amd64", "1.7.1")
            .unwrap()
            .is_none());
        assert!(pinned_sha256(&catalog(), "unknown", "1").unwrap().is_none());
    }

    #[test]
    fn placeholders_refuse_and_real_pins_are_returned() {
        let err = pinned_sha256(&catalog(), "reth-x86_64-unknown-linux-gnu", "1.9.3")
            .err()
            .unwrap();
        assert!(
            matches!(&err, ApiError::Conflict(m) if m.contains("placeholder")),
            "{err:?}"
        );
        let pin = pinned_sha256(&catalog(), "bitcoin-core-x86_64-linux-gnu", "30.2")
            .unwrap()
            .unwrap();
        assert_eq!(pin.sha256.len(), 64);
        assert_eq!(pin.source, "chains/bitcoin/profile.yaml");
    }

    // -- through the router, as the lead wires it (extension layer, no
    // router-wide body limit on this route) --

    use crate::bootstrap;
    use axum::http::Request;
    use hood_domain::identity::{ApiKey, Role, User};
    use hood_domain::{ApiKeyId, UserId};
    use hood_identity::master_key::MasterKey;
    use hood_identity::tokens::{TokenConfig, TokenIssuer};
    use serde_json::Value;
    use tower::ServiceExt;

    struct Api {
        app: Router,
        admin: String,
        operator: String,
        _dir: tempfile::TempDir,
    }

    async fn api(with_store: bool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn hood_store::Store> =
            hood_store::connect(&hood_testkit::sqlite_url(&dir))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        let master = MasterKey::generate();
        let keys = bootstrap::ensure_signing_keys(store.as_ref(), &master)
            .await
            .unwrap();
        let tokens = TokenIssuer::new(&keys, &master, TokenConfig::default()).unwrap();
        let state = AppState::new(
            store.clone(),
            tokens,
            None,
            Arc::new(catalog()),
            &crate::state::ApiConfig::default(),
        );
        let report = bootstrap::bootstrap_admin(store.as_ref(), dir.path(), None)
            .await
            .unwrap()
            .unwrap();
        let admin = std::fs::read_to_string(report.key_file).unwrap();
        // An org admin with every permission, but not a platform admin.
        let me = store.list_orgs().await.unwrap().remove(0);
        let now = crate::clock::now();
        let user = User {
            id: UserId::from_uuid(Uuid::now_v7()),
            org_id: me.id,
            email: "ops@hood.local".into(),
            display_name: "Ops".into(),
            role: Role::Admin,
            platform_admin: false,
            password_hash: None,
            disabled: false,
            created_at: now,
        };
        store.create_user(&user).await.unwrap();
        let generated = hood_identity::api_keys::generate_api_key();
        store
            .create_api_key(&ApiKey {
                id: ApiKeyId::from_uuid(Uuid::now_v7()),
                org_id: me.id,
                user_id: user.id,
                name: "ops".into(),
                prefix: generated.prefix.clone(),
                secret_hash: generated.secret_hash.clone(),
                role: Role::Admin,
                scopes: vec![],
                created_at: now,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            })
            .await
            .unwrap();
        let mut app = router().with_state(state);
        if with_store {
            let artifacts = ArtifactStore::from_location(
                &hood_artifacts::StoreLocation::embedded(dir.path()),
                store.clone(),
            )
            .unwrap();
            app = app.layer(Extension(Arc::new(artifacts)));
        }
        Api {
            app,
            admin: admin.trim().to_owned(),
            operator: generated.token,
            _dir: dir,
        }
    }

    impl Api {
        async fn call(
            &self,
            method: &str,
            uri: &str,
            token: Option<&str>,
            headers: &[(&str, &str)],
            body: Body,
        ) -> (StatusCode, HeaderMap, Value) {
            let mut req = Request::builder().method(method).uri(uri);
            if let Some(t) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = self
                .app
                .clone()
                .oneshot(req.body(body).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let json = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            (status, headers, json)
        }

        async fn put(
            &self,
            uri: &str,
            data: Vec<u8>,
            headers: &[(&str, &str)],
        ) -> (StatusCode, HeaderMap, Value) {
            self.call(
                "PUT",
                uri,
                Some(&self.admin.clone()),
                headers,
                Body::from(data),
            )
            .await
        }
    }

    #[test]
    fn errors_map_to_problem_statuses() {
        let cases: Vec<(ArtifactError, StatusCode)> = vec![
            (
                FieldError::new("name", "bad").into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                ArtifactError::NotFound {
                    name: "a".into(),
                    version: "1".into(),
                },
                StatusCode::NOT_FOUND,
            ),
            (
                ArtifactError::ChecksumMismatch {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
            (ArtifactError::Conflict("x".into()), StatusCode::CONFLICT),
            (
                ArtifactError::TooLarge { limit: 5 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ArtifactError::Corrupt("disk".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ArtifactError::ObjectMissing {
                    name: "a".into(),
                    version: "1".into(),
                    sha256: "b".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status(), status);
        }
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[tokio::test]
    async fn push_show_list_and_repush_over_http() {
        let api = api(true).await;
        let body = data(3 * 1024 * 1024 + 5, 1);
        let (status, headers, v) = api
            .put(
                "/api/v1/artifacts/anvil-linux-amd64/1.5.1",
                body.clone(),
                &[("content-type", "application/octet-stream")],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(
            headers.get(header::LOCATION).unwrap(),
            "/api/v1/artifacts/anvil-linux-amd64/1.5.1"
        );
        let sha = v["sha256"].as_str().unwrap().to_owned();
        assert_eq!(sha.len(), 64);
        assert_eq!(v["size"], body.len() as u64);
        assert_eq!(v["name"], "anvil-linux-amd64");
        assert_eq!(v["version"], "1.5.1");
        assert!(v["created_by"].is_string());
        assert!(v.get("object_key").is_none(), "internal");
        assert_eq!(v["outcome"], "created");

        // Same content again, announced: 200, nothing changes.
        let (status, _, again) = api
            .put(
                "/api/v1/artifacts/anvil-linux-amd64/1.5.1",
                body.clone(),
                &[(SHA256_HEADER, &sha.to_uppercase())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["outcome"], "existing");
        let mut v = v;
        v.as_object_mut().unwrap().remove("outcome");
        let mut again = again;
        again.as_object_mut().unwrap().remove("outcome");
        assert_eq!(again, v);

        let (status, _, shown) = api
            .call(
                "GET",
                "/api/v1/artifacts/anvil-linux-amd64/1.5.1",
                Some(&api.operator),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown, v);
        let (status, _, list) = api
            .call(
                "GET",
                "/api/v1/artifacts",
                Some(&api.operator),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (_, _, none) = api
            .call(
                "GET",
                "/api/v1/artifacts?name=reth",
                Some(&api.operator),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(none["items"].as_array().unwrap().len(), 0);

        // Other content under the same version: 409, the original stays.
        let (status, headers, p) = api
            .put(
                "/api/v1/artifacts/anvil-linux-amd64/1.5.1",
                data(1000, 2),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        assert!(p["detail"].as_str().unwrap().contains("immutable"), "{p}");
        let (_, _, shown) = api
            .call(
                "GET",
                "/api/v1/artifacts/anvil-linux-amd64/1.5.1",
                Some(&api.admin),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(shown["sha256"], sha.as_str());
    }

    #[tokio::test]
    async fn a_push_restores_an_object_the_store_lost_and_says_so() {
        let api = api(true).await;
        let uri = "/api/v1/artifacts/tool/2.0";
        let body = data(70_000, 9);
        let (status, _, v) = api.put(uri, body.clone(), &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let blob = api
            ._dir
            .path()
            .join("artifacts/blobs/sha256")
            .join(v["sha256"].as_str().unwrap());
        std::fs::remove_file(&blob).unwrap();

        let (status, _, again) = api.put(uri, body.clone(), &[]).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["outcome"], "restored");
        assert_eq!(
            again["created_at"], v["created_at"],
            "the row is the old one"
        );
        assert_eq!(std::fs::read(&blob).unwrap(), body);
        let (_, _, idle) = api.put(uri, body, &[]).await;
        assert_eq!(idle["outcome"], "existing");
    }

    #[tokio::test]
    async fn bad_pushes_are_problems_and_store_nothing() {
        let api = api(true).await;
        let uri = "/api/v1/artifacts/tool/1.0";
        // Announced checksum does not match: 400.
        let wrong = "0".repeat(64);
        let (status, _, p) = api
            .put(uri, data(5000, 3), &[(SHA256_HEADER, &wrong)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("checksum mismatch"),
            "{p}"
        );
        // Malformed checksum header: 400 naming it.
        let (status, _, p) = api.put(uri, data(10, 3), &[(SHA256_HEADER, "xyz")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(p["invalid-params"][0]["name"], "X-Hood-Sha256");
        // Traversal in the path (percent-encoded slashes decode into one
        // segment): 400 naming the field.
        let (status, _, p) = api
            .put("/api/v1/artifacts/..%2F..%2Fetc/1", data(10, 3), &[])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        assert_eq!(p["invalid-params"][0]["name"], "name");
        let (status, _, p) = api.put("/api/v1/artifacts/tool/..", data(10, 3), &[]).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{status} {p}"
        );
        // Empty body: 400.
        let (status, _, p) = api.put(uri, Vec::new(), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        // A chain profile pins a placeholder for this one: refused up front.
        let (status, _, p) = api
            .put(
                "/api/v1/artifacts/reth-x86_64-unknown-linux-gnu/1.9.3",
                data(10, 3),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("placeholder"), "{p}");
        // And a real pin refuses other content.
        let (status, _, p) = api
            .put(
                "/api/v1/artifacts/bitcoin-core-x86_64-linux-gnu/30.2",
                data(10, 3),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("chains/bitcoin/profile.yaml"),
            "{p}"
        );

        let (_, _, list) = api
            .call(
                "GET",
                "/api/v1/artifacts",
                Some(&api.admin),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
        let (status, _, _) = api
            .call(
                "GET",
                "/api/v1/artifacts/tool/1.0",
                Some(&api.admin),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn only_platform_admins_push_and_everyone_must_authenticate() {
        let api = api(true).await;
        let uri = "/api/v1/artifacts/tool/1.0";
        let (status, _, _) = api
            .call("PUT", uri, None, &[], Body::from(data(10, 4)))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = api
            .call("GET", "/api/v1/artifacts", None, &[], Body::empty())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, p) = api
            .call(
                "PUT",
                uri,
                Some(&api.operator),
                &[],
                Body::from(data(10, 4)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("platform"), "{p}");
    }

    #[tokio::test]
    async fn without_a_store_the_routes_are_unavailable() {
        let api = api(false).await;
        let (status, headers, _) = api
            .call(
                "GET",
                "/api/v1/artifacts",
                Some(&api.admin),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
    }
}
