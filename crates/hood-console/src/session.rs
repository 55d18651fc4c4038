//! Browser sessions and request forgery protection.
//!
//! A signed-in browser holds the API's own token pair in two cookies
//! (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` over TLS): the
//! short access token and the refresh token. When the access token is near
//! its end the console rotates the pair through the API's refresh route,
//! so reuse detection and revocation are the API's. Every state-changing
//! request must carry the CSRF token (form field `_csrf` or header
//! `X-CSRF-Token`) equal to the `hood_csrf` cookie, compared in constant
//! time; the cookie is random per browser and replaced at sign-in.

use crate::backend::{Caller, Failure};
use crate::layout::refused;
use crate::viewer::{CsrfToken, Flash, Session, CSRF_FIELD};
use crate::Console;
use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hood_api::views::{MeView, TokenPair};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const ACCESS_COOKIE: &str = "hood_access";
pub(crate) const REFRESH_COOKIE: &str = "hood_refresh";
pub(crate) const CSRF_COOKIE: &str = "hood_csrf";
pub(crate) const FLASH_COOKIE: &str = "hood_flash";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Largest form the console accepts.
pub(crate) const FORM_LIMIT_BYTES: usize = 64 * 1024;
/// An access token this close to its end is rotated before use.
const REFRESH_AHEAD_SECS: i64 = 60;
/// How long a rotation's result answers a second request that presented
/// the same refresh token (a page and its event stream racing): without
/// it the API would see a reuse and revoke the whole session.
const ROTATION_GRACE: Duration = Duration::from_secs(30);

/// The cookies of a request, by name (the first of duplicates wins).
pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                out.entry(name.trim().to_owned())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    out
}

/// Whether cookies must be `Secure`: configured, or the request came
/// through a TLS-terminating proxy that says so (the flag only restricts).
pub(crate) fn secure(console: &Console, headers: &HeaderMap) -> bool {
    console.config().secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The console's address as browsers reach it (`https://hood.example`):
/// the configured public URL, else this request's own scheme and host.
pub(crate) fn public_base(console: &Console, headers: &HeaderMap) -> String {
    if let Some(base) = &console.config().public_url {
        return base.trim_end_matches('/').to_owned();
    }
    let scheme = if secure(console, headers) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A `Set-Cookie` value with the console's attributes; `max_age` 0 clears.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    cookie_header(name, value, max_age_secs, secure, "Strict", "/console")
}

/// A `Set-Cookie` value, `HttpOnly` always: `SameSite=Lax` is only for the
/// OIDC flow's cookie, which must survive the provider's redirect back.
pub(crate) fn cookie_header(
    name: &str,
    value: &str,
    max_age_secs: i64,
    secure: bool,
    same_site: &str,
    path: &str,
) -> HeaderValue {
    let mut text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age_secs}"
    );
    if secure {
        text.push_str("; Secure");
    }
    // Names and values are ours: base64url, JWTs and fixed names.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A redirect after a successful form, carrying a flash for the next page.
pub(crate) fn redirect_with(
    console: &Console,
    headers: &HeaderMap,
    to: &str,
    flash: Flash,
) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FLASH_COOKIE, &flash.encode(), 120, secure(console, headers)),
    );
    response
}

/// CSRF for every console request: makes sure the browser has a token
/// (setting the cookie when it has none) and refuses a state-changing
/// request whose form field or header does not match it.
pub(crate) async fn csrf_layer(
    State(console): State<Console>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let jar = cookies(&parts.headers);
    let existing = jar.get(CSRF_COOKIE).filter(|t| !t.is_empty()).cloned();
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let from_header = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = if safe {
        body
    } else {
        let Some(expected) = existing.as_deref() else {
            return refused(
                StatusCode::FORBIDDEN,
                "This form has expired: reload the page and try again.",
            );
        };
        // A token in the header leaves the body unread: an upload streams
        // through at any size. Only a form's body is read for its field.
        let (presented, body) = match from_header {
            Some(token) => (Some(token), body),
            None => {
                let bytes = match to_bytes(body, FORM_LIMIT_BYTES).await {
                    Ok(b) => b,
                    Err(_) => {
                        return refused(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
                    }
                };
                (form_urlencoded_field(&bytes, CSRF_FIELD), Body::from(bytes))
            }
        };
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
            tracing::warn!(path = %parts.uri.path(), "console request refused: CSRF token missing or wrong");
            return refused(
                StatusCode::FORBIDDEN,
                "This request did not carry the page's security token: reload the page and try again.",
            );
        }
        body
    };
    let token = existing.clone().unwrap_or_else(random_token);
    let secure_cookie = secure(&console, &parts.headers);
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none() {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(CSRF_COOKIE, &token, 7 * 86_400, secure_cookie),
        );
    }
    response
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The claims the console reads from a JWT, without verification: only
/// to decide when to rotate and which session to forget (the API verifies
/// every use).
#[derive(Deserialize)]
struct Claims {
    exp: i64,
    sid: Option<String>,
}

fn claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()
}

fn token_expiry(token: &str) -> Option<i64> {
    claims(token).map(|c| c.exp)
}

/// Rotations of the last few seconds, by the refresh token's hash.
#[derive(Default)]
pub(crate) struct Rotations {
    recent: HashMap<[u8; 32], (Instant, Arc<TokenPair>)>,
}

impl Console {
    /// Forgets the rotations of the session `token` belongs to (at sign
    /// out): a stale refresh cookie must not find its successor here.
    pub(crate) async fn forget_rotations(&self, token: &str) {
        let Some(sid) = claims(token).and_then(|c| c.sid) else {
            return;
        };
        self.rotations()
            .lock()
            .await
            .recent
            .retain(|_, (_, pair)| pair.session_id.to_string() != sid);
    }

    /// Exchanges a refresh token for a new pair, once: a second request
    /// with the same token within [`ROTATION_GRACE`] gets the same answer.
    async fn rotate(&self, refresh: &str, peer: SocketAddr) -> Result<Arc<TokenPair>, Failure> {
        let key: [u8; 32] = Sha256::digest(refresh.as_bytes()).into();
        let mut rotations = self.rotations().lock().await;
        rotations
            .recent
            .retain(|_, (at, _)| at.elapsed() < ROTATION_GRACE);
        if let Some((_, pair)) = rotations.recent.get(&key) {
            return Ok(pair.clone());
        }
        let caller = Caller { token: None, peer };
        let pair: TokenPair = self
            .backend()
            .call(
                &caller,
                Method::POST,
                "/api/v1/auth/refresh",
                &serde_json::json!({ "refresh_token": refresh }),
            )
            .await?;
        let pair = Arc::new(pair);
        rotations.recent.insert(key, (Instant::now(), pair.clone()));
        Ok(pair)
    }

    /// The session of a request, rotating the tokens when due; `None` when
    /// the browser is not signed in (or its session ended).
    pub(crate) async fn resolve(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        csrf: String,
        may_rotate: bool,
    ) -> (Option<Session>, Option<Arc<TokenPair>>) {
        let jar = cookies(headers);
        let flash = jar.get(FLASH_COOKIE).and_then(|f| Flash::decode(f));
        let now = hood_clock::now().secs();
        let mut access = jar.get(ACCESS_COOKIE).filter(|t| !t.is_empty()).cloned();
        let mut rotated = None;
        let due = access
            .as_deref()
            .and_then(token_expiry)
            .is_none_or(|exp| exp - now < REFRESH_AHEAD_SECS);
        if due && may_rotate {
            if let Some(refresh) = jar.get(REFRESH_COOKIE).filter(|t| !t.is_empty()) {
                match self.rotate(refresh, peer).await {
                    Ok(pair) => {
                        access = Some(pair.access_token.clone());
                        rotated = Some(pair);
                    }
                    Err(f) => {
                        tracing::info!(status = %f.status, "console session could not be refreshed");
                        return (None, None);
                    }
                }
            }
        }
        let Some(token) = access else {
            return (None, None);
        };
        let caller = Caller {
            token: Some(token),
            peer,
        };
        match self.backend().get::<MeView>(&caller, "/api/v1/me").await {
            Ok(me) => (
                Some(Session {
                    caller,
                    me: Arc::new(me),
                    csrf,
                    flash,
                }),
                rotated,
            ),
            Err(_) => (None, None),
        }
    }
}

/// Sets the cookies of a new or rotated token pair on `response`.
pub(crate) fn set_session_cookies(response: &mut Response, pair: &TokenPair, secure: bool) {
    let refresh_ttl = token_expiry(&pair.refresh_token)
        .map(|exp| exp - hood_clock::now().secs())
        .unwrap_or(7 * 86_400)
        .max(60);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(ACCESS_COOKIE, &pair.access_token, refresh_ttl, secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(REFRESH_COOKIE, &pair.refresh_token, refresh_ttl, secure),
    );
}

/// Clears the session (and the flash) from the browser.
pub(crate) fn clear_session_cookies(response: &mut Response, secure: bool) {
    let headers = response.headers_mut();
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        headers.append(header::SET_COOKIE, set_cookie(name, "", 0, secure));
    }
}

/// Signed-in pages: resolves the session (or sends the browser to the
/// sign-in page), hands it to the handler, and sets rotated cookies and
/// clears a shown flash on the way out.
pub(crate) async fn session_layer(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let csrf = request
        .extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    // The event stream and the terminal's WebSocket cannot set cookies
    // once they run: they never rotate (the page they belong to just did),
    // and are refused when the token has ended.
    let streaming =
        request.uri().path() == "/console/live" || request.uri().path().ends_with("/terminal/ws");
    let (session, rotated) = console
        .resolve(request.headers(), peer, csrf, !streaming)
        .await;
    let secure_cookie = secure(&console, request.headers());
    let Some(session) = session else {
        if streaming {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let to = if request.method() == Method::GET {
            format!(
                "/console/login?next={}",
                form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
            )
        } else {
            "/console/login".to_owned()
        };
        let mut response = Redirect::to(&to).into_response();
        clear_session_cookies(&mut response, secure_cookie);
        return response;
    };
    let had_flash = session.flash.is_some();
    request.extensions_mut().insert(session);
    let mut response = next.run(request).await;
    if let Some(pair) = rotated {
        set_session_cookies(&mut response, &pair, secure_cookie);
    }
    // A redirect carries its own new flash; any other answer showed it.
    if had_flash && !response.status().is_redirection() {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(FLASH_COOKIE, "", 0, secure_cookie),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_and_first_wins() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("a=3; c=x=y"));
        let jar = cookies(&h);
        assert_eq!(jar["a"], "1");
        assert_eq!(jar["b"], "2");
        assert_eq!(jar["c"], "x=y");
    }

    #[test]
    fn cookie_attributes() {
        let v = set_cookie("hood_access", "t", 60, false);
        let text = v.to_str().unwrap();
        assert!(text.contains("HttpOnly"));
        assert!(text.contains("SameSite=Strict"));
        assert!(!text.contains("Secure"));
        let v = set_cookie("hood_access", "t", 60, true);
        assert!(v.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn flash_round_trips() {
        let f = Flash {
            message: "created <b>".into(),
            error: false,
            secret: Some("hrpc_x".into()),
            secret_label: Some("key".into()),
        };
        let back = Flash::decode(&f.encode()).unwrap();
        assert_eq!(back.message, "created <b>");
        assert_eq!(back.secret.as_deref(), Some("hrpc_x"));
        assert!(Flash::decode("%%%").is_none());
    }

    #[test]
    fn expiry_of_a_jwt_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":42}"#);
        assert_eq!(token_expiry(&format!("h.{payload}.s")), Some(42));
        assert_eq!(token_expiry("nonsense"), None);
    }

    #[test]
    fn csrf_field_from_a_form() {
        assert_eq!(
            form_urlencoded_field(b"a=1&_csrf=tok%2Bx", "_csrf").as_deref(),
            Some("tok+x")
        );
        assert_eq!(form_urlencoded_field(b"a=1", "_csrf"), None);
    }
}
