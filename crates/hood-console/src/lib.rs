//! Hood's web console (`/console`) and public status page (`/status`).
//!
//! Server-rendered HTML (maud: compile-time templates, every value escaped
//! unless marked otherwise) with one small script for what a page cannot do
//! alone: live updates over Server-Sent Events, sorting and filtering
//! tables, confirmations and busy states. Forms work without the script.
//! Every asset is compiled into the binary, so the console works
//! air-gapped and needs no front-end build.
//!
//! Signed-in pages never touch the store: they call the API's own router in
//! process with the user's token ([`backend`]), so what a user sees and may
//! do is decided by exactly the API's rules. The status page and badges are
//! public and read only the nodes their organization made public.

mod assets;
mod backend;
mod chart;
mod layout;
mod live;
mod oidc;
mod pages;
mod session;
mod status;
mod viewer;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use backend::Backend;
use hood_api::state::AppState;
use hood_bus::EventBus;
use hood_store::Store;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

pub use oidc::OidcLogin;

/// Settings of the console.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Mark cookies `Secure` (set when the console is served over TLS, or
    /// behind a proxy that terminates it). A request that arrives with
    /// `X-Forwarded-Proto: https` gets `Secure` cookies either way.
    pub secure_cookies: bool,
    /// The edge's public URL, shown beside RPC keys (`None`: not shown).
    pub edge_url: Option<String>,
    /// Sign-in through this OpenID Connect issuer, beside passwords.
    pub oidc: Option<OidcLogin>,
    /// The console's public base URL (`https://hood.example`), for the
    /// OIDC redirect URI; `None`: taken from each request's `Host`.
    pub public_url: Option<String>,
}

/// What every console handler shares. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    store: Arc<dyn Store>,
    bus: Option<Arc<dyn EventBus>>,
    config: ConsoleConfig,
    rotations: tokio::sync::Mutex<session::Rotations>,
    status: status::Cache,
    oidc: Option<oidc::OidcClient>,
}

impl Console {
    /// `bus`: where live updates come from (node state changes,
    /// incidents). Without one, pages still work and say that live updates
    /// are off.
    pub fn new(state: AppState, bus: Option<Arc<dyn EventBus>>, config: ConsoleConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: state.store.clone(),
                backend: Backend::new(state),
                bus,
                oidc: config.oidc.clone().map(oidc::OidcClient::new),
                config,
                rotations: tokio::sync::Mutex::new(session::Rotations::default()),
                status: status::Cache::default(),
            }),
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn bus(&self) -> Option<&Arc<dyn EventBus>> {
        self.inner.bus.as_ref()
    }

    pub(crate) fn config(&self) -> &ConsoleConfig {
        &self.inner.config
    }

    pub(crate) fn rotations(&self) -> &tokio::sync::Mutex<session::Rotations> {
        &self.inner.rotations
    }

    pub(crate) fn oidc(&self) -> Option<&oidc::OidcClient> {
        self.inner.oidc.as_ref()
    }

    pub(crate) fn status_cache(&self) -> &status::Cache {
        &self.inner.status
    }
}

/// The console's routes, to merge into the api role's router: `/`
/// (redirects to `/console`), `/console/…`, `/status` and its badges.
pub fn router(console: Console) -> Router {
    let signed_in = Router::new()
        .route("/console", get(pages::overview::overview))
        .route(
            "/console/nodes",
            get(pages::nodes::list).post(pages::nodes::create),
        )
        .route("/console/nodes/{id}", get(pages::nodes::detail))
        .route("/console/nodes/{id}/delete", post(pages::nodes::delete))
        .route(
            "/console/nodes/{id}/snapshots",
            post(pages::nodes::take_snapshot),
        )
        .route(
            "/console/nodes/{id}/restore",
            post(pages::nodes::restore_snapshot),
        )
        .route(
            "/console/nodes/{id}/status-page",
            post(pages::nodes::set_public),
        )
        .route(
            "/console/allocations",
            get(pages::allocations::list).post(pages::allocations::create),
        )
        .route("/console/allocations/{id}", get(pages::allocations::detail))
        .route(
            "/console/allocations/{id}/release",
            post(pages::allocations::release),
        )
        .route(
            "/console/allocations/{id}/terminal",
            get(pages::allocations::terminal),
        )
        .route(
            "/console/allocations/{id}/terminal/ws",
            get(pages::allocations::terminal_socket),
        )
        .route("/console/incidents", get(pages::incidents::list))
        .route(
            "/console/incidents/{id}/ack",
            post(pages::incidents::acknowledge),
        )
        .route("/console/workflows", get(pages::workflows::list))
        .route("/console/workflows/{id}", get(pages::workflows::detail))
        .route(
            "/console/workflows/{id}/retry",
            post(pages::workflows::retry),
        )
        .route(
            "/console/workflows/{id}/abandon",
            post(pages::workflows::abandon),
        )
        .route("/console/rollouts", get(pages::rollouts::list))
        .route("/console/rollouts/{id}", get(pages::rollouts::detail))
        .route("/console/rollouts/{id}/{verb}", post(pages::rollouts::act))
        .route("/console/hosts", get(pages::fleet::hosts))
        .route("/console/hosts/{id}", get(pages::fleet::host))
        .route("/console/notifications", get(pages::notifications::list))
        .route(
            "/console/notifications/read",
            post(pages::notifications::mark_all_read),
        )
        .route("/console/chains", get(pages::fleet::chains))
        .route(
            "/console/orgs",
            get(pages::identity::orgs).post(pages::identity::create_org),
        )
        .route("/console/orgs/{id}", get(pages::identity::org))
        .route(
            "/console/orgs/{id}/users",
            post(pages::identity::create_user),
        )
        .route(
            "/console/api-keys",
            get(pages::identity::api_keys).post(pages::identity::create_api_key),
        )
        .route(
            "/console/api-keys/{id}/revoke",
            post(pages::identity::revoke_api_key),
        )
        .route(
            "/console/rpc-keys",
            get(pages::rpc::keys).post(pages::rpc::create_key),
        )
        .route(
            "/console/rpc-keys/{id}/revoke",
            post(pages::rpc::revoke_key),
        )
        .route("/console/usage", get(pages::rpc::usage))
        .route(
            "/console/storage",
            get(pages::storage::list).post(pages::storage::create),
        )
        .route("/console/storage/{name}", get(pages::storage::browse))
        .route(
            "/console/storage/{name}/delete",
            post(pages::storage::delete),
        )
        .route(
            "/console/storage/{name}/presign",
            post(pages::storage::presign),
        )
        .route(
            "/console/storage/{name}/delete-object",
            post(pages::storage::delete_object),
        )
        .route(
            "/console/storage/{name}/objects/{*key}",
            get(pages::storage::object).put(pages::storage::object),
        )
        .route("/console/billing", get(pages::billing::overview))
        .route("/console/invoices/{id}", get(pages::billing::invoice))
        .route(
            "/console/channels",
            get(pages::channels::list).post(pages::channels::create),
        )
        .route("/console/channels/{id}/test", post(pages::channels::test))
        .route(
            "/console/account",
            get(pages::identity::account).post(pages::identity::update_account),
        )
        .route("/console/live", get(live::stream))
        .route("/console/logout", post(pages::auth::logout))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            session::session_layer,
        ));
    let console_routes = Router::new()
        .route(
            "/console/login",
            get(pages::auth::login_form).post(pages::auth::login),
        )
        .route("/console/login/oidc", get(oidc::start))
        .route("/console/login/oidc/callback", get(oidc::callback))
        .merge(signed_in)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            session::csrf_layer,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/status", get(status::page))
        .route("/status/badges/{file}", get(status::badge))
        .merge(console_routes)
        .with_state(console)
        .layer(axum::extract::DefaultBodyLimit::max(
            session::FORM_LIMIT_BYTES,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(CatchPanicLayer::custom(|_| {
            layout::refused(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server.",
            )
        }))
}

/// The Content-Security-Policy of every console page: scripts and styles
/// only from Hood itself, no inline script or style, no framing, forms
/// post only to Hood.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A page may set a policy of its own (the terminal's allows inline
    // styles); every other response gets the console's.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

impl IntoResponse for backend::Failure {
    fn into_response(self) -> Response {
        pages::failure_page(&self)
    }
}
