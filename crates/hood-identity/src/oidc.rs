//! Verification of tokens minted by an external OIDC issuer (SSO).
//!
//! The issuer's JWKS is fetched lazily and cached for `cache_ttl`. A token
//! whose `kid` is not in the cache triggers one refetch (the issuer may have
//! rotated), rate-limited so that garbage tokens cannot turn us into a
//! request amplifier against the issuer. When a refresh fails the stale
//! keys keep working: an IdP outage should not log everybody out.

use crate::errors::TokenError;
use crate::jwt;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default JWKS cache lifetime.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// At most one refetch per this interval for unknown `kid`s.
const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch, wait this long before trying again.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(10);
/// Clock skew tolerated between us and the issuer.
const LEEWAY_SECS: u64 = 30;
/// Per-request timeout, so a hanging IdP cannot hang logins indefinitely.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which external issuer to trust, and for which audience.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Expected `iss` claim, also the base URL for discovery.
    pub issuer: String,
    /// Expected `aud` (our client id at the IdP).
    pub audience: String,
    /// `None` → discover from `{issuer}/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// How long fetched keys are used before refreshing (default 300 s).
    pub cache_ttl: Duration,
}

impl OidcConfig {
    /// A config using discovery and the default cache lifetime.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            cache_ttl: DEFAULT_CACHE_TTL,
        }
    }
}

/// The claims we read from an external token.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcClaims {
    pub iss: String,
    pub sub: String,
    /// A string or an array of strings (OIDC allows both).
    pub aud: serde_json::Value,
    pub exp: i64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// One usable verification key and the only algorithm it may verify, so a
/// token cannot pick an algorithm the key was not published for.
struct OidcKey {
    alg: Algorithm,
    decoding: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, OidcKey>,
    without_kid: Vec<OidcKey>,
}

impl KeySet {
    fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.without_kid.is_empty()
    }

    /// The key for a token. Without a `kid`, only an unambiguous key (the
    /// single one published for the algorithm) is used.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&OidcKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => {
                let mut candidates = self
                    .by_kid
                    .values()
                    .chain(&self.without_kid)
                    .filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => Some(k),
                    _ => None,
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// Bumped on every successful fetch, so a waiter can tell that someone
    /// else refreshed while it queued for the fetch lock.
    generation: u64,
    /// When the cache must be refreshed (or a failed fetch retried).
    refresh_at: Option<Instant>,
    last_forced_refetch: Option<Instant>,
    /// The JWKS URL from discovery, remembered until a fetch fails.
    discovered_jwks_url: Option<String>,
}

impl State {
    fn fresh_keys(&self, now: Instant) -> Option<Arc<KeySet>> {
        match (&self.keys, self.refresh_at) {
            (Some(keys), Some(at)) if now < at => Some(keys.clone()),
            _ => None,
        }
    }
}

struct Inner {
    cfg: OidcConfig,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Serialises fetches: concurrent requests share one fetch instead of
    /// stampeding the issuer.
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Verifies tokens of one external issuer. Cheap to clone; clones share the
/// key cache.
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl OidcVerifier {
    pub fn new(cfg: OidcConfig, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                http,
                state: Mutex::new(State::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.inner.cfg.issuer
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is always left consistent, so a panic elsewhere while
        // holding the lock does not make it unusable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies a token from the external issuer: RS256/ES256 per JWKS key,
    /// `kid` looked up in the cached JWKS (an unknown `kid` refetches at most
    /// once per 30 s), `iss` and `aud` checked, `exp` checked against the
    /// system clock with 30 s leeway.
    pub async fn verify(&self, token: &str) -> Result<OidcClaims, TokenError> {
        let header = jwt::header(token)?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(TokenError::WrongAlgorithm),
        };
        let kid = header.kid.as_deref();

        let (mut keys, generation) = self.current_keys().await?;
        if keys.find(kid, alg).is_none() {
            if kid.is_none() {
                return Err(TokenError::UnknownKey);
            }
            keys = self
                .refetch_for_unknown_kid(generation)
                .await
                .ok_or(TokenError::UnknownKey)?;
        }
        let key = keys.find(kid, alg).ok_or(TokenError::UnknownKey)?;
        if key.alg != alg {
            return Err(TokenError::WrongAlgorithm);
        }

        let cfg = &self.inner.cfg;
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<OidcClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| jwt::map_error(&e))
    }

    /// The cached keys, refreshed first when missing or older than the TTL.
    /// On a failed refresh, stale keys are returned if there are any.
    async fn current_keys(&self) -> Result<(Arc<KeySet>, u64), TokenError> {
        {
            let st = self.state();
            if let Some(keys) = st.fresh_keys(Instant::now()) {
                return Ok((keys, st.generation));
            }
        }
        let _fetching = self.inner.fetch_lock.lock().await;
        {
            let st = self.state();
            let now = Instant::now();
            if let Some(keys) = st.fresh_keys(now) {
                return Ok((keys, st.generation));
            }
            // A recent fetch failed: do not retry on every request.
            if st.refresh_at.is_some_and(|at| now < at) {
                return match &st.keys {
                    Some(keys) => Ok((keys.clone(), st.generation)),
                    None => Err(TokenError::JwksUnavailable(
                        "identity provider keys could not be fetched recently".into(),
                    )),
                };
            }
        }
        let fetched = self.fetch().await;
        let mut st = self.state();
        match fetched {
            Ok(set) => {
                let keys = Arc::new(set);
                self.store(&mut st, keys.clone());
                Ok((keys, st.generation))
            }
            Err(msg) => {
                st.refresh_at = Some(Instant::now() + FAILED_FETCH_BACKOFF);
                st.discovered_jwks_url = None;
                match &st.keys {
                    Some(keys) => {
                        tracing::warn!(issuer = %self.inner.cfg.issuer, error = %msg,
                            "JWKS refresh failed; using cached keys");
                        Ok((keys.clone(), st.generation))
                    }
                    None => {
                        tracing::warn!(issuer = %self.inner.cfg.issuer, error = %msg,
                            "JWKS fetch failed");
                        Err(TokenError::JwksUnavailable(msg))
                    }
                }
            }
        }
    }

    fn store(&self, st: &mut State, keys: Arc<KeySet>) {
        st.keys = Some(keys);
        st.generation = st.generation.wrapping_add(1);
        st.refresh_at = Some(Instant::now() + self.inner.cfg.cache_ttl);
    }

    /// Refetches because a token names a `kid` we do not have. Returns the
    /// keys to retry with, or `None` when no newer keys are available (rate
    /// limit hit or fetch failed).
    async fn refetch_for_unknown_kid(&self, seen_generation: u64) -> Option<Arc<KeySet>> {
        let _fetching = self.inner.fetch_lock.lock().await;
        {
            let mut st = self.state();
            if st.generation != seen_generation {
                // Someone refreshed while we waited: retry with their keys.
                return st.keys.clone();
            }
            let now = Instant::now();
            if st
                .last_forced_refetch
                .is_some_and(|t| now.duration_since(t) < UNKNOWN_KID_REFETCH_INTERVAL)
            {
                return None;
            }
            st.last_forced_refetch = Some(now);
        }
        let fetched = self.fetch().await;
        let mut st = self.state();
        match fetched {
            Ok(set) => {
                let keys = Arc::new(set);
                self.store(&mut st, keys.clone());
                Some(keys)
            }
            Err(msg) => {
                st.discovered_jwks_url = None;
                tracing::warn!(issuer = %self.inner.cfg.issuer, error = %msg,
                    "JWKS refetch for unknown key id failed");
                None
            }
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        self.inner
            .http
            .get(url)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {e}"))?
            .json::<T>()
            .await
            .map_err(|e| format!("GET {url}: invalid JSON: {e}"))
    }

    async fn jwks_url(&self) -> Result<String, String> {
        let cfg = &self.inner.cfg;
        if let Some(url) = &cfg.jwks_url {
            return Ok(url.clone());
        }
        if let Some(url) = self.state().discovered_jwks_url.clone() {
            return Ok(url);
        }
        let base = cfg.issuer.trim_end_matches('/');
        let doc: Discovery = self
            .get_json(&format!("{base}/.well-known/openid-configuration"))
            .await?;
        // OIDC Discovery §4.3: the document must name the issuer we asked,
        // or a compromised/misconfigured endpoint could substitute keys.
        if doc.issuer.trim_end_matches('/') != base {
            return Err(format!(
                "discovery document names issuer {} instead of {}",
                doc.issuer, cfg.issuer
            ));
        }
        self.state().discovered_jwks_url = Some(doc.jwks_uri.clone());
        Ok(doc.jwks_uri)
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let url = self.jwks_url().await?;
        let doc: serde_json::Value = self.get_json(&url).await?;
        let set = parse_jwks(&doc);
        if set.is_empty() {
            return Err(format!("JWKS at {url} has no usable RS256/ES256 keys"));
        }
        tracing::debug!(issuer = %self.inner.cfg.issuer, keys = set.by_kid.len() + set.without_kid.len(),
            "fetched JWKS");
        Ok(set)
    }
}

/// Keeps the signing keys we can use (RSA → RS256, EC P-256 → ES256) and
/// skips everything else, one bad entry not spoiling the set. Symmetric
/// (`oct`) keys are never accepted: a public JWKS secret is no secret.
fn parse_jwks(doc: &serde_json::Value) -> KeySet {
    let mut set = KeySet::default();
    let entries = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if !matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        ) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                if matches!(p.curve, EllipticCurve::P256) =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let key = OidcKey { alg, decoding };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.entry(kid).or_insert(key);
            }
            None => set.without_kid.push(key),
        }
    }
    set
}

/// Reads the `iss` claim of a JWT WITHOUT verifying it, to decide which
/// verifier to use. Never trust the result for anything else.
pub fn peek_issuer(token: &str) -> Option<String> {
    jwt::payload(token)
        .ok()?
        .get("iss")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_jwks_skips_symmetric_and_encryption_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "RFEkSlo_bCi0qz1sOPebRMA1pWMAbysCKico2GORgJE",
             "y": "mhbXYV-T1087DYDz-kPud6t5MLBRqaQ5TkMbJheOZnc"},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "RFEkSlo_bCi0qz1sOPebRMA1pWMAbysCKico2GORgJE",
             "y": "mhbXYV-T1087DYDz-kPud6t5MLBRqaQ5TkMbJheOZnc"},
            {"kty": "weird"}
        ]});
        let set = parse_jwks(&doc);
        assert_eq!(set.by_kid.len(), 1);
        assert!(set
            .by_kid
            .get("ec")
            .is_some_and(|k| k.alg == Algorithm::ES256));
        assert!(set.without_kid.is_empty());
    }

    #[test]
    fn peek_issuer_reads_unverified_iss() {
        let payload = jwt::b64url(br#"{"iss":"https://idp.example"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig");
        assert_eq!(peek_issuer(&token).as_deref(), Some("https://idp.example"));
        assert_eq!(peek_issuer("not a token"), None);
        assert_eq!(peek_issuer("a.e30.b"), None);
    }

    #[test]
    fn verify_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let v = OidcVerifier::new(OidcConfig::new("http://x", "a"), reqwest::Client::new());
        let fut = v.verify("t");
        assert_send(&fut);
    }
}
