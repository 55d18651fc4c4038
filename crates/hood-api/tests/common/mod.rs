//! The real router (both roles, as `hood up` serves them) on SQLite with
//! its bootstrap administrator: what the API's integration tests share.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hood_api::state::{ApiConfig, AppState};
use hood_api::{bootstrap, HttpRole};
use hood_identity::master_key::MasterKey;
use hood_identity::tokens::{TokenConfig, TokenIssuer};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Api {
    pub app: Router,
    pub admin: String,
    pub org: String,
    pub store: Arc<dyn hood_store::Store>,
    _dir: tempfile::TempDir,
}

pub async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn hood_store::Store> = hood_store::connect(&hood_testkit::sqlite_url(&dir))
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
        Arc::new(hood_chains::builtin().unwrap()),
        &ApiConfig::default(),
    );
    let report = bootstrap::bootstrap_admin(store.as_ref(), dir.path(), None)
        .await
        .unwrap()
        .unwrap();
    let admin = std::fs::read_to_string(report.key_file)
        .unwrap()
        .trim()
        .to_owned();
    let org = store.list_orgs().await.unwrap().remove(0).id.to_string();
    Api {
        app: hood_api::router(state, &[HttpRole::Api, HttpRole::Auth]),
        admin,
        org,
        store,
        _dir: dir,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    /// The `Connection` header, if any.
    pub connection: Option<String>,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem JSON answer with `status` naming `param`.
    pub fn names(&self, status: StatusCode, param: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status.as_u16());
        assert_eq!(
            self.body["invalid-params"][0]["name"], param,
            "{}",
            self.body
        );
    }

    pub fn problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status.as_u16());
    }
}

impl Api {
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let connection = resp
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            connection,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.send(
            Request::post(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }
}
