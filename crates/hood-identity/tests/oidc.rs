//! OIDC verification against a real local HTTP server serving discovery and
//! a JWKS, with tokens signed by real RSA/EC keys.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hood_identity::oidc::{peek_issuer, OidcConfig, OidcVerifier};
use hood_identity::TokenError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const AUD: &str = "hood-client";

/// A test-only P-256 key (PKCS#8) and its public coordinates.
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgp87AfvxwG3g7vRDp
VuPNak0Z3mVRnO0LLgu/5dyha9+hRANCAAREUSRKWj9sKLSrPWw495tEwDWlYwBv
KwIqJyjYY5GAkZoW12Ffk9dPOw2A8/pD7nereTCwUamkOU5DGyYXjmZ3
-----END PRIVATE KEY-----
";
const EC_X: &str = "RFEkSlo_bCi0qz1sOPebRMA1pWMAbysCKico2GORgJE";
const EC_Y: &str = "mhbXYV-T1087DYDz-kPud6t5MLBRqaQ5TkMbJheOZnc";

/// Two RSA keys, generated once per test binary.
fn rsa_keys() -> &'static [RsaPrivateKey; 2] {
    static KEYS: OnceLock<[RsaPrivateKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap());
            let b = s.spawn(|| RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap());
            [a.join().unwrap(), b.join().unwrap()]
        })
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
    })
}

fn ec_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": EC_X, "y": EC_Y, "use": "sig"})
}

fn rsa_encoding(key: &RsaPrivateKey) -> EncodingKey {
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(issuer: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": issuer, "sub": "user-123", "aud": AUD,
        "iat": now, "exp": now + 300,
        "email": "ada@example.com", "email_verified": true,
    })
}

fn sign_rsa(key: &RsaPrivateKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &rsa_encoding(key)).unwrap()
}

/// The fake identity provider.
struct Idp {
    jwks: Mutex<Value>,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
    issuer: OnceLock<String>,
}

struct Server {
    idp: Arc<Idp>,
    base: String,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(jwks: Value) -> Self {
        let idp = Arc::new(Idp {
            jwks: Mutex::new(jwks),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
            issuer: OnceLock::new(),
        });
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(idp): State<Arc<Idp>>| async move {
                    idp.discovery_hits.fetch_add(1, Ordering::SeqCst);
                    let issuer = idp.issuer.get().cloned().unwrap_or_default();
                    Json(json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/keys"),
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }))
                }),
            )
            .route(
                "/keys",
                get(|State(idp): State<Arc<Idp>>| async move {
                    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
                    Json(idp.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(idp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        idp.issuer.set(base.clone()).unwrap();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { idp, base, handle }
    }

    fn jwks_hits(&self) -> usize {
        self.idp.jwks_hits.load(Ordering::SeqCst)
    }

    fn discovery_hits(&self) -> usize {
        self.idp.discovery_hits.load(Ordering::SeqCst)
    }

    fn set_jwks(&self, jwks: Value) {
        *self.idp.jwks.lock().unwrap() = jwks;
    }

    /// Stops accepting connections. Clients must not pool connections for
    /// this to look like a dead server (see `client`).
    async fn stop(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// No connection pooling, so a stopped server is really unreachable.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn verifier(server: &Server) -> OidcVerifier {
    OidcVerifier::new(OidcConfig::new(&server.base, AUD), client())
}

#[tokio::test]
async fn verifies_with_discovery_and_caches_keys() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    assert_eq!(v.issuer(), server.base);

    let token = sign_rsa(a, Some("a"), &claims(&server.base));
    assert_eq!(peek_issuer(&token).as_deref(), Some(server.base.as_str()));
    let got = v.verify(&token).await.unwrap();
    assert_eq!(got.iss, server.base);
    assert_eq!(got.sub, "user-123");
    assert_eq!(got.aud, json!(AUD));
    assert_eq!(got.email.as_deref(), Some("ada@example.com"));
    assert_eq!(got.email_verified, Some(true));
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    // Repeated verifies (also through a clone) are served from the cache.
    for _ in 0..5 {
        v.verify(&token).await.unwrap();
        v.clone().verify(&token).await.unwrap();
    }
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn concurrent_first_verifies_share_one_fetch() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    let token = sign_rsa(a, Some("a"), &claims(&server.base));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn array_audience_is_accepted() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    let mut c = claims(&server.base);
    c["aud"] = json!(["other", AUD]);
    let got = v.verify(&sign_rsa(a, Some("a"), &c)).await.unwrap();
    assert_eq!(got.aud, json!(["other", AUD]));
}

#[tokio::test]
async fn wrong_audience_issuer_expiry_and_algorithm_are_refused() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    let base = claims(&server.base);

    let mut c = base.clone();
    c["aud"] = json!("someone-else");
    assert_eq!(
        v.verify(&sign_rsa(a, Some("a"), &c)).await.unwrap_err(),
        TokenError::WrongAudience
    );
    let mut c = base.clone();
    c.as_object_mut().unwrap().remove("aud");
    assert!(v.verify(&sign_rsa(a, Some("a"), &c)).await.is_err());

    let mut c = base.clone();
    c["iss"] = json!("https://evil.example");
    assert_eq!(
        v.verify(&sign_rsa(a, Some("a"), &c)).await.unwrap_err(),
        TokenError::WrongIssuer
    );

    let mut c = base.clone();
    c["exp"] = json!(now_secs() - 120);
    assert_eq!(
        v.verify(&sign_rsa(a, Some("a"), &c)).await.unwrap_err(),
        TokenError::Expired
    );
    // Within the 30 s leeway.
    let mut c = base.clone();
    c["exp"] = json!(now_secs() - 10);
    assert!(v.verify(&sign_rsa(a, Some("a"), &c)).await.is_ok());

    // HS256 keyed with the public modulus, and alg none.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("a".into());
    let hs = jsonwebtoken::encode(&header, &base, &EncodingKey::from_secret(b"n")).unwrap();
    assert_eq!(v.verify(&hs).await.unwrap_err(), TokenError::WrongAlgorithm);
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"a"}"#),
        b64(&serde_json::to_vec(&base).unwrap())
    );
    assert_eq!(
        v.verify(&none).await.unwrap_err(),
        TokenError::WrongAlgorithm
    );

    // Tampered payload.
    let token = sign_rsa(a, Some("a"), &base);
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = base.clone();
    c["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(
        v.verify(&forged).await.unwrap_err(),
        TokenError::BadSignature
    );
    assert_eq!(
        v.verify("garbage").await.unwrap_err(),
        TokenError::Malformed
    );
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_is_rate_limited() {
    let [a, b] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    let good = sign_rsa(a, Some("a"), &claims(&server.base));
    v.verify(&good).await.unwrap();
    assert_eq!(server.jwks_hits(), 1);

    let unknown = sign_rsa(b, Some("nope"), &claims(&server.base));
    assert_eq!(
        v.verify(&unknown).await.unwrap_err(),
        TokenError::UnknownKey
    );
    assert_eq!(server.jwks_hits(), 2, "one refetch for the unknown kid");
    for _ in 0..5 {
        assert_eq!(
            v.verify(&unknown).await.unwrap_err(),
            TokenError::UnknownKey
        );
        v.verify(&good).await.unwrap();
    }
    assert_eq!(server.jwks_hits(), 2, "no further refetch within 30 s");
    assert_eq!(server.discovery_hits(), 1);
}

#[tokio::test]
async fn rotated_key_is_picked_up_by_refetch() {
    let [a, b] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    v.verify(&sign_rsa(a, Some("a"), &claims(&server.base)))
        .await
        .unwrap();

    server.set_jwks(json!({"keys": [rsa_jwk(b, "b"), rsa_jwk(a, "a")]}));
    let rotated = sign_rsa(b, Some("b"), &claims(&server.base));
    v.verify(&rotated).await.unwrap();
    assert_eq!(server.jwks_hits(), 2);
    v.verify(&rotated).await.unwrap();
    v.verify(&sign_rsa(a, Some("a"), &claims(&server.base)))
        .await
        .unwrap();
    assert_eq!(server.jwks_hits(), 2);

    // Signed by key a but claiming kid b.
    let forged = sign_rsa(a, Some("b"), &claims(&server.base));
    assert_eq!(
        v.verify(&forged).await.unwrap_err(),
        TokenError::BadSignature
    );
}

#[tokio::test]
async fn server_down_after_first_fetch_still_verifies_from_cache() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let base = server.base.clone();
    let fresh = verifier(&server);
    // A zero TTL makes every verify try a refresh: the stale keys must
    // still be used when the refresh fails.
    let stale = OidcVerifier::new(
        OidcConfig {
            cache_ttl: Duration::ZERO,
            ..OidcConfig::new(&server.base, AUD)
        },
        client(),
    );
    let token = sign_rsa(a, Some("a"), &claims(&base));
    fresh.verify(&token).await.unwrap();
    stale.verify(&token).await.unwrap();
    server.stop().await;
    assert!(
        client().get(format!("{base}/keys")).send().await.is_err(),
        "server should be down"
    );

    for _ in 0..3 {
        assert_eq!(fresh.verify(&token).await.unwrap().sub, "user-123");
        assert_eq!(stale.verify(&token).await.unwrap().sub, "user-123");
    }
}

#[tokio::test]
async fn unreachable_issuer_without_cache_is_jwks_unavailable() {
    // Bind and drop to get a port nobody listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let [a, _] = rsa_keys();
    let v = OidcVerifier::new(OidcConfig::new(&base, AUD), client());
    let token = sign_rsa(a, Some("a"), &claims(&base));
    let err = v.verify(&token).await.unwrap_err();
    assert!(matches!(err, TokenError::JwksUnavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(&token));
}

#[tokio::test]
async fn explicit_jwks_url_skips_discovery() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    let v = OidcVerifier::new(
        OidcConfig {
            jwks_url: Some(format!("{}/keys", server.base)),
            ..OidcConfig::new(&server.base, AUD)
        },
        client(),
    );
    v.verify(&sign_rsa(a, Some("a"), &claims(&server.base)))
        .await
        .unwrap();
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (0, 1));
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a")]})).await;
    // Configured with a different (but same-host) issuer URL: the
    // discovery document will name the server's base instead.
    let issuer = format!("{}/tenant", server.base);
    let v = OidcVerifier::new(OidcConfig::new(&issuer, AUD), client());
    let err = v
        .verify(&sign_rsa(a, Some("a"), &claims(&issuer)))
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::JwksUnavailable(_)), "{err:?}");
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn es256_keys_verify_and_bind_their_algorithm() {
    let [a, _] = rsa_keys();
    let server = Server::start(json!({"keys": [ec_jwk("ec"), rsa_jwk(a, "a")]})).await;
    let v = verifier(&server);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec".into());
    let ec_key = EncodingKey::from_ec_pem(EC_PEM.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims(&server.base), &ec_key).unwrap();
    assert_eq!(v.verify(&token).await.unwrap().sub, "user-123");

    // An RS256 token naming the EC key's kid is refused.
    let confused = sign_rsa(a, Some("ec"), &claims(&server.base));
    assert_eq!(
        v.verify(&confused).await.unwrap_err(),
        TokenError::WrongAlgorithm
    );
}

#[tokio::test]
async fn token_without_kid_uses_the_only_matching_key() {
    let [a, b] = rsa_keys();
    let server = Server::start(json!({"keys": [rsa_jwk(a, "a"), ec_jwk("ec")]})).await;
    let v = verifier(&server);
    v.verify(&sign_rsa(a, None, &claims(&server.base)))
        .await
        .unwrap();

    // Ambiguous once two RSA keys are published.
    let server2 = Server::start(json!({"keys": [rsa_jwk(a, "a"), rsa_jwk(b, "b")]})).await;
    let v2 = verifier(&server2);
    assert_eq!(
        v2.verify(&sign_rsa(a, None, &claims(&server2.base)))
            .await
            .unwrap_err(),
        TokenError::UnknownKey
    );
}
