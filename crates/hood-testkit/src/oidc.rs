//! An OpenID Connect provider for tests, on loopback, speaking the
//! protocol as OpenID Connect Core 1.0 and RFC 7636 (PKCE) define it:
//! discovery (`/.well-known/openid-configuration`), a JWKS, an
//! authorization endpoint that approves at once as the configured user
//! (redirecting back with `code` and `state`), and a token endpoint that
//! checks the code, the client, the redirect URI and the PKCE verifier
//! before returning an RS256 ID token carrying the request's `nonce`.
//! It can also sign arbitrary tokens for verifier tests.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

const KID: &str = "test-kid";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A running test provider.
pub struct TestIssuer {
    /// The issuer URL (`iss`), also the base of every endpoint.
    pub url: String,
    key: EncodingKey,
    shared: Arc<Shared>,
}

struct Shared {
    issuer: String,
    key: EncodingKey,
    /// The e-mail the authorization endpoint signs in as.
    email: Mutex<String>,
    /// Issued codes: what the token endpoint must see again.
    codes: Mutex<HashMap<String, Grant>>,
}

#[derive(Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
    email: String,
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn authorize(State(s): State<Arc<Shared>>, Query(q): Query<AuthorizeQuery>) -> Response {
    let scopes_ok = q
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|x| x == "openid"));
    let Some(challenge) = q
        .code_challenge
        .filter(|_| q.code_challenge_method.as_deref() == Some("S256"))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if q.response_type != "code" || !scopes_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let code = b64url(uuid::Uuid::new_v4().as_bytes());
    let email = s.email.lock().map(|e| e.clone()).unwrap_or_default();
    if let Ok(mut codes) = s.codes.lock() {
        codes.insert(
            code.clone(),
            Grant {
                client_id: q.client_id,
                redirect_uri: q.redirect_uri.clone(),
                nonce: q.nonce,
                challenge,
                email,
            },
        );
    }
    let mut to = format!("{}?code={code}", q.redirect_uri);
    if let Some(state) = q.state {
        to.push_str("&state=");
        to.push_str(&form_urlencoded_value(&state));
    }
    Redirect::to(&to).into_response()
}

fn form_urlencoded_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn token(State(s): State<Arc<Shared>>, Form(f): Form<TokenForm>) -> Response {
    if f.grant_type != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // A code is good once.
    let grant = s.codes.lock().ok().and_then(|mut c| c.remove(&f.code));
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier_ok = b64url(&Sha256::digest(f.code_verifier.as_bytes())) == grant.challenge;
    if grant.client_id != f.client_id || grant.redirect_uri != f.redirect_uri || !verifier_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut claims = json!({
        "iss": s.issuer, "sub": format!("ext-{}", grant.email), "aud": grant.client_id,
        "iat": now, "exp": now + 600, "email": grant.email, "email_verified": true,
    });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = sign(&s.key, &claims);
    Json(json!({
        "access_token": b64url(uuid::Uuid::new_v4().as_bytes()),
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": id_token,
    }))
    .into_response()
}

fn sign(key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.into());
    encode(&header, claims, key).unwrap_or_default()
}

impl TestIssuer {
    /// Starts a provider that signs in as `email`.
    pub async fn start(email: &str) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .unwrap_or_else(|e| panic!("test issuer key: {e}"));
        let public = private.to_public_key();
        let jwk = json!({
            "kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
            "n": b64url(&public.n().to_bytes_be()), "e": b64url(&public.e().to_bytes_be()),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("test issuer bind: {e}"));
        let url = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("test issuer address: {e}"))
        );
        // ring wants PKCS#1.
        let der = private
            .to_pkcs1_der()
            .unwrap_or_else(|e| panic!("test issuer key encoding: {e}"));
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        let shared = Arc::new(Shared {
            issuer: url.clone(),
            key: key.clone(),
            email: Mutex::new(email.to_owned()),
            codes: Mutex::new(HashMap::new()),
        });
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/jwks",
                get(move || async move { Json(json!({ "keys": [jwk] })) }),
            )
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, key, shared }
    }

    /// Signs `claims` with the provider's key (RS256, its `kid`).
    pub fn token(&self, claims: Value) -> String {
        sign(&self.key, &claims)
    }

    /// Who the authorization endpoint signs in as from now on.
    pub fn sign_in_as(&self, email: &str) {
        if let Ok(mut e) = self.shared.email.lock() {
            *e = email.to_owned();
        }
    }
}
