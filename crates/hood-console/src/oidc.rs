//! Sign-in through the configured OpenID Connect issuer: the authorization
//! code flow with PKCE (RFC 7636), a `state` bound to the browser and a
//! `nonce` bound to the ID token.
//!
//! The API already accepts the issuer's ID tokens as bearer tokens (users
//! matched by verified e-mail), so the console keeps the ID token as the
//! session's access token: the API checks its signature, issuer, audience
//! and expiry on every call, and the session ends when the token does (the
//! provider's own session makes signing in again one click).

use crate::layout::{bare, html_response, refused};
use crate::pages::auth::safe_next;
use crate::session::{
    cookie_header, cookies, public_base, random_token, secure, set_cookie, ACCESS_COOKIE,
    CSRF_COOKIE, REFRESH_COOKIE,
};
use crate::Console;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hood_api::views::MeView;
use maud::html;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

/// The flow's cookie: what the callback must find again.
const FLOW_COOKIE: &str = "hood_oidc";
const FLOW_PATH: &str = "/console/login/oidc";
/// How long a sign-in at the provider may take.
const FLOW_TTL_SECS: i64 = 600;
const CALLBACK_PATH: &str = "/console/login/oidc/callback";

/// The console's client at the issuer.
#[derive(Clone)]
pub struct OidcLogin {
    /// The issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id, which is also the audience the API expects.
    pub client_id: String,
    /// For confidential clients; public clients rely on PKCE alone.
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The client: its settings, an HTTP client, the discovered endpoints.
pub(crate) struct OidcClient {
    login: OidcLogin,
    http: reqwest::Client,
    endpoints: tokio::sync::OnceCell<Discovery>,
}

impl OidcClient {
    pub(crate) fn new(login: OidcLogin) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            login,
            http,
            endpoints: tokio::sync::OnceCell::new(),
        }
    }

    /// The provider's name as the sign-in button shows it (its host).
    pub(crate) fn label(&self) -> String {
        let rest = self
            .login
            .issuer
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.login.issuer);
        rest.split('/').next().unwrap_or(rest).to_owned()
    }

    /// Discovery, once (a failure is retried at the next sign-in).
    async fn endpoints(&self) -> Result<&Discovery, String> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.login.issuer.trim_end_matches('/')
                );
                let r = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("discovery at {url}: {e}"))?;
                if !r.status().is_success() {
                    return Err(format!("discovery at {url}: {}", r.status()));
                }
                r.json::<Discovery>()
                    .await
                    .map_err(|e| format!("discovery at {url}: {e}"))
            })
            .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

/// RFC 7636's S256 challenge of a verifier.
pub(crate) fn challenge(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

/// Where the provider sends the browser back: the configured public URL of
/// the console, else this request's own host (the provider only accepts
/// the redirect URIs registered for the client, so a forged Host header
/// leads nowhere).
fn redirect_uri(console: &Console, headers: &HeaderMap) -> String {
    format!("{}{CALLBACK_PATH}", public_base(console, headers))
}

fn query_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// `GET /console/login/oidc`: off to the provider.
pub(crate) async fn start(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(oidc) = console.oidc() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Sign-in through an identity provider is not configured.",
        );
    };
    let endpoints = match oidc.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in: discovery failed");
            return refused(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached right now.",
            );
        }
    };
    let flow = Flow {
        state: random_token(),
        nonce: random_token(),
        // 86 characters: within RFC 7636's 43..=128.
        verifier: format!("{}{}", random_token(), random_token()),
        next: safe_next(q.next.as_deref()).to_owned(),
    };
    let to = format!(
        "{}{}response_type=code&client_id={}&redirect_uri={}&scope=openid%20email%20profile&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
        endpoints.authorization_endpoint,
        if endpoints.authorization_endpoint.contains('?') { '&' } else { '?' },
        query_value(&oidc.login.client_id),
        query_value(&redirect_uri(&console, &headers)),
        flow.state,
        flow.nonce,
        challenge(&flow.verifier),
    );
    let mut response = Redirect::to(&to).into_response();
    let value = b64(&serde_json::to_vec(&flow).unwrap_or_default());
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            FLOW_COOKIE,
            &value,
            FLOW_TTL_SECS,
            secure(&console, &headers),
            "Lax",
            FLOW_PATH,
        ),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: String,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    exp: i64,
    nonce: Option<String>,
}

/// The claims of a JWT the API has verified (only read after it did).
fn claims_of(token: &str) -> Option<IdClaims> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&unb64(payload)?).ok()
}

/// `GET /console/login/oidc/callback`: the code for an ID token, checked.
pub(crate) async fn callback(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = console.oidc() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Sign-in through an identity provider is not configured.",
        );
    };
    let secure_cookie = secure(&console, &headers);
    let flow = cookies(&headers)
        .get(FLOW_COOKIE)
        .and_then(|v| unb64(v))
        .and_then(|b| serde_json::from_slice::<Flow>(&b).ok());
    let Some(flow) = flow else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in expired or was started elsewhere: start again.",
        );
    };
    if let Some(error) = &q.error {
        let why = q.error_description.as_deref().unwrap_or(error);
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused the sign-in: {why}"),
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer had no code.",
        );
    };
    if state != flow.state {
        tracing::warn!("OIDC sign-in refused: state does not match the browser's");
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started by this browser: start again.",
        );
    }
    let endpoints = match oidc.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in: discovery failed");
            return refused(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached right now.",
            );
        }
    };
    let redirect = redirect_uri(&console, &headers);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", oidc.login.client_id.as_str()),
        ("code_verifier", flow.verifier.as_str()),
    ];
    if let Some(secret) = &oidc.login.client_secret {
        form.push(("client_secret", secret.as_str()));
    }
    let answer = oidc
        .http
        .post(&endpoints.token_endpoint)
        .form(&form)
        .send()
        .await;
    let token = match answer {
        Ok(r) if r.status().is_success() => {
            r.json::<TokenAnswer>().await.map_err(|e| e.to_string())
        }
        Ok(r) => Err(format!("token endpoint answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    };
    let id_token = match token {
        Ok(t) => t.id_token,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in: the code exchange failed");
            return refused(
                StatusCode::BAD_GATEWAY,
                "The identity provider did not confirm the sign-in.",
            );
        }
    };
    // The API verifies the token (signature, issuer, audience, expiry) and
    // finds the user by verified e-mail.
    let caller = crate::backend::Caller {
        token: Some(id_token.clone()),
        peer,
    };
    let me = match console.backend().get::<MeView>(&caller, "/api/v1/me").await {
        Ok(me) => me,
        Err(f) => {
            tracing::info!(status = %f.status, "OIDC sign-in: no Hood user for this identity");
            return refused(
                StatusCode::FORBIDDEN,
                "The identity provider signed you in, but no Hood user has this verified e-mail address.",
            );
        }
    };
    let Some(claims) = claims_of(&id_token) else {
        return refused(
            StatusCode::BAD_GATEWAY,
            "The identity provider's token could not be read.",
        );
    };
    if claims.nonce.as_deref() != Some(flow.nonce.as_str()) {
        tracing::warn!(user = %me.user.email, "OIDC sign-in refused: the token's nonce is not this sign-in's");
        return refused(
            StatusCode::BAD_REQUEST,
            "The identity provider's token was not issued for this sign-in.",
        );
    }
    let lifetime = (claims.exp - hood_clock::now().secs()).max(1);
    // A page, not a redirect: the browser arrived from the provider's site,
    // and a redirect would carry that cross-site origin (no Strict cookie
    // would be sent). Moving on from this page is a same-site navigation.
    let body = bare(
        "Signed in",
        html! {
            meta http-equiv="refresh" content=(format!("0;url={}", flow.next));
            div.card.narrow {
                h1 { "Signed in" }
                p { "Welcome, " (me.user.display_name) ". " a href=(flow.next) { "Continue to the console" } }
            }
        },
    );
    let mut response = html_response(StatusCode::OK, body);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(ACCESS_COOKIE, &id_token, lifetime, secure_cookie),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(REFRESH_COOKIE, "", 0, secure_cookie),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CSRF_COOKIE, &random_token(), 7 * 86_400, secure_cookie),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(FLOW_COOKIE, "", 0, secure_cookie, "Lax", FLOW_PATH),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenge() {
        // Python: base64.urlsafe_b64encode(sha256(v).digest()).rstrip(b"=")
        assert_eq!(
            challenge("hood-pkce-verifier-0123456789-abcdefghijklmnopqrstu"),
            "NBILFy353Gp9iDaqTkETcn1xp8Vv4Iz6BQoQOJ8qbgg"
        );
    }

    #[test]
    fn claims_of_a_token() {
        let payload = b64(br#"{"exp":5,"nonce":"n"}"#);
        let c = claims_of(&format!("h.{payload}.s")).unwrap();
        assert_eq!((c.exp, c.nonce.as_deref()), (5, Some("n")));
        assert!(claims_of("garbage").is_none());
    }
}
