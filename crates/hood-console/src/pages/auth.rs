//! Sign-in and sign-out: the API's login and logout routes, with the token
//! pair kept in `HttpOnly` cookies.

use super::FormData;
use crate::backend::Caller;
use crate::layout::{bare, csrf_field, form_error, html_response};
use crate::session::{
    clear_session_cookies, cookies, random_token, secure, set_cookie, set_session_cookies,
    CSRF_COOKIE,
};
use crate::viewer::{CsrfToken, Session};
use crate::Console;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use hood_api::views::TokenPair;
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// Only a console path is a place to go after signing in (never another
/// site: `//host` and `/\host` are refused).
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/console/login")
                && !n.starts_with("/console/live") =>
        {
            n
        }
        _ => "/console",
    }
}

/// The sign-in page. `provider`: the OIDC issuer's name, when configured.
fn form(
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
    provider: Option<String>,
) -> Response {
    html_response(
        status,
        bare(
            "Sign in",
            html! {
                div.card.narrow.login {
                    div.brand.big { "Hood" }
                    h1 { "Sign in" }
                    (form_error(error))
                    form method="post" action="/console/login" data-busy="Signing in…" {
                        (csrf_field(csrf))
                        input type="hidden" name="next" value=(next);
                        label for="email" { "E-mail" }
                        input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password" required;
                        button.primary type="submit" { "Sign in" }
                    }
                    @if let Some(provider) = &provider {
                        p.or { "or" }
                        a.button.wide href=(format!("/console/login/oidc?next={}", super::q(next))) data-testid="oidc-sign-in" {
                            "Sign in with " (provider)
                        }
                    }
                    p.muted.small {
                        "Public status: " a href="/status" { "/status" }
                    }
                }
            },
        ),
    )
}

pub(crate) async fn login_form(
    State(console): State<Console>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let provider = console.oidc().map(|o| o.label());
    form(
        &csrf.0,
        safe_next(q.next.as_deref()),
        "",
        None,
        StatusCode::OK,
        provider,
    )
}

pub(crate) async fn login(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    form_data: FormData,
) -> Response {
    let email = form_data.get("email").unwrap_or_default();
    let password = form_data
        .0
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let next = form_data.get("next");
    let next = safe_next(next.as_deref()).to_owned();
    let caller = Caller { token: None, peer };
    let answer: Result<TokenPair, _> = console
        .backend()
        .call(
            &caller,
            Method::POST,
            "/api/v1/auth/login",
            &serde_json::json!({ "email": email, "password": password }),
        )
        .await;
    match answer {
        Ok(pair) => {
            let secure = secure(&console, &headers);
            let mut response = Redirect::to(&next).into_response();
            set_session_cookies(&mut response, &pair, secure);
            // A new CSRF token with the new session (a token planted
            // before sign-in is worth nothing after it).
            let fresh = random_token();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(CSRF_COOKIE, &fresh, 7 * 86_400, secure),
            );
            response
        }
        Err(f) => {
            let (message, status) = match f.status {
                StatusCode::UNAUTHORIZED => (
                    "Wrong e-mail or password.".to_owned(),
                    StatusCode::UNAUTHORIZED,
                ),
                StatusCode::TOO_MANY_REQUESTS => (
                    "Too many attempts from this address: wait a minute and try again.".to_owned(),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                StatusCode::BAD_REQUEST => (f.message(), StatusCode::BAD_REQUEST),
                s => (f.message(), s),
            };
            let token = cookies(&headers)
                .get(CSRF_COOKIE)
                .cloned()
                .unwrap_or(csrf.0);
            let provider = console.oidc().map(|o| o.label());
            form(&token, &next, &email, Some(&message), status, provider)
        }
    }
}

pub(crate) async fn logout(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &session.caller.token {
        console.forget_rotations(token).await;
    }
    if let Err(f) = console
        .backend()
        .act(&session.caller, Method::POST, "/api/v1/auth/logout")
        .await
    {
        tracing::warn!(status = %f.status, "console logout: the API refused to end the session");
    }
    let secure = secure(&console, &headers);
    let mut response = Redirect::to("/console/login").into_response();
    clear_session_cookies(&mut response, secure);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed() {
        assert_eq!(safe_next(Some("/console/nodes?x=1")), "/console/nodes?x=1");
        assert_eq!(safe_next(Some("https://evil.example")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console")), "/console");
        assert_eq!(safe_next(Some("/console\\@evil")), "/console");
        assert_eq!(safe_next(Some("/console/login")), "/console");
        assert_eq!(safe_next(None), "/console");
    }
}
