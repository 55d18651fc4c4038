//! RS256 session tokens: short-lived access tokens and the refresh tokens
//! that renew them.
//!
//! Asymmetric signing lets anything holding the JWKS verify our tokens
//! without being able to mint them. Keys rotate by adding a new
//! [`SigningKey`]: the newest non-retired key signs, every given key keeps
//! verifying until the tokens it signed have expired.

use crate::errors::{IdentityError, TokenError};
use crate::jwt;
use crate::master_key::MasterKey;
use hood_domain::identity::{RefreshToken, SigningKey, User};
use hood_domain::{SessionId, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// RSA modulus size for new keys, and the minimum accepted for old ones.
const RSA_BITS: usize = 2048;
const TYP_ACCESS: &str = "access";
const TYP_REFRESH: &str = "refresh";

/// Who we are in tokens, and how long they live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    /// Access token lifetime; short because access tokens are not revocable.
    pub access_ttl_secs: i64,
    /// Refresh token lifetime.
    pub refresh_ttl_secs: i64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: "hood".into(),
            audience: "hood-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 604_800,
        }
    }
}

/// The AAD that binds a sealed private key to its `kid`, so a sealed key
/// cannot be swapped into another key's record.
fn signing_key_aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    jwt::b64url(&bytes)
}

/// Generates a new RSA-2048 signing key with a random `kid`. The private key
/// (PKCS#8 DER) is sealed under `master`; the public key is SPKI PEM.
pub fn generate_signing_key(
    master: &MasterKey,
    now: Timestamp,
) -> Result<SigningKey, IdentityError> {
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
        .map_err(|e| IdentityError::Crypto(format!("RSA key generation: {e}")))?;
    let der = private
        .to_pkcs8_der()
        .map_err(|e| IdentityError::Key(format!("PKCS#8 encoding: {e}")))?;
    let public_key_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| IdentityError::Key(format!("SPKI encoding: {e}")))?;
    let kid = random_id();
    let sealed_private_key = master.seal(der.as_bytes(), &signing_key_aad(&kid))?;
    Ok(SigningKey {
        kid,
        sealed_private_key,
        public_key_pem,
        created_at: now,
        retired_at: None,
    })
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Organization id.
    pub org: String,
    /// Session id.
    pub sid: String,
    pub role: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    pub jti: String,
    /// Always `"access"`: stops a refresh token being used as an access token.
    pub typ: String,
}

/// Claims of a refresh token. Deliberately carries no role: the role is
/// re-read from the store on every refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Always `"refresh"`.
    pub typ: String,
}

/// A public key we verify with, plus its JWK components.
struct VerifyKey {
    kid: String,
    decoding: DecodingKey,
    n: String,
    e: String,
}

struct Inner {
    cfg: TokenConfig,
    signing_kid: String,
    encoding: EncodingKey,
    /// Index into `verify_keys` by kid.
    by_kid: HashMap<String, usize>,
    verify_keys: Vec<VerifyKey>,
}

/// Issues and verifies Hood's own session tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("cfg", &self.inner.cfg)
            .field("signing_kid", &self.inner.signing_kid)
            .field(
                "verify_kids",
                &self
                    .inner
                    .verify_keys
                    .iter()
                    .map(|k| k.kid.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Signs with the newest non-retired key; verifies with all given keys
    /// (by `kid` header). Errors if there is no usable key or a sealed key
    /// cannot be opened.
    ///
    /// Only the signing key's private half is unsealed: the others are only
    /// needed for verification, so their private keys stay sealed.
    pub fn new(
        keys: &[SigningKey],
        master: &MasterKey,
        cfg: TokenConfig,
    ) -> Result<Self, IdentityError> {
        if cfg.access_ttl_secs <= 0 || cfg.refresh_ttl_secs <= 0 {
            return Err(IdentityError::Config(
                "token lifetimes must be positive".into(),
            ));
        }
        let mut by_kid = HashMap::with_capacity(keys.len());
        let mut verify_keys = Vec::with_capacity(keys.len());
        let mut public_keys = Vec::with_capacity(keys.len());
        for key in keys {
            let public = RsaPublicKey::from_public_key_pem(&key.public_key_pem).map_err(|e| {
                IdentityError::Key(format!("public key of signing key {}: {e}", key.kid))
            })?;
            if public.size() * 8 < RSA_BITS {
                return Err(IdentityError::Key(format!(
                    "signing key {} is shorter than {RSA_BITS} bits",
                    key.kid
                )));
            }
            let n = jwt::b64url(&public.n().to_bytes_be());
            let e = jwt::b64url(&public.e().to_bytes_be());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| {
                IdentityError::Key(format!("public key of signing key {}: {e}", key.kid))
            })?;
            if by_kid.insert(key.kid.clone(), verify_keys.len()).is_some() {
                return Err(IdentityError::Config(format!(
                    "duplicate signing key id {}",
                    key.kid
                )));
            }
            verify_keys.push(VerifyKey {
                kid: key.kid.clone(),
                decoding,
                n,
                e,
            });
            public_keys.push(public);
        }

        let (signer_idx, signer) = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.retired_at.is_none())
            .max_by_key(|(_, k)| k.created_at)
            .ok_or_else(|| IdentityError::Config("no active (non-retired) signing key".into()))?;
        let der = master.open(&signer.sealed_private_key, &signing_key_aad(&signer.kid))?;
        let private = RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
            IdentityError::Key(format!("private key of signing key {}: {e}", signer.kid))
        })?;
        if private.to_public_key() != public_keys[signer_idx] {
            return Err(IdentityError::Key(format!(
                "private and public halves of signing key {} do not match",
                signer.kid
            )));
        }
        let pkcs1 = private.to_pkcs1_der().map_err(|e| {
            IdentityError::Key(format!("private key of signing key {}: {e}", signer.kid))
        })?;
        let encoding = EncodingKey::from_rsa_der(pkcs1.as_bytes());

        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                signing_kid: signer.kid.clone(),
                encoding,
                by_kid,
                verify_keys,
            }),
        })
    }

    pub fn config(&self) -> &TokenConfig {
        &self.inner.cfg
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.inner.signing_kid
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.inner.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.encoding)
            .map_err(|e| IdentityError::Crypto(format!("token signing: {e}")))
    }

    /// Issues an access token for `user` in `session`.
    pub fn issue_access(
        &self,
        user: &User,
        session: SessionId,
        now: Timestamp,
    ) -> Result<(String, AccessClaims), IdentityError> {
        let cfg = &self.inner.cfg;
        let iat = now.secs();
        let claims = AccessClaims {
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            sub: user.id.to_string(),
            org: user.org_id.to_string(),
            sid: session.to_string(),
            role: user.role.as_str().to_owned(),
            iat,
            exp: iat.saturating_add(cfg.access_ttl_secs),
            jti: random_id(),
            typ: TYP_ACCESS.into(),
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Returns the token and the RefreshToken record to store (jti =
    /// claims.jti, expires_at from refresh_ttl).
    pub fn issue_refresh(
        &self,
        user: &User,
        session: SessionId,
        now: Timestamp,
    ) -> Result<(String, RefreshToken), IdentityError> {
        let cfg = &self.inner.cfg;
        let iat = now.secs();
        let claims = RefreshClaims {
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            sub: user.id.to_string(),
            sid: session.to_string(),
            iat,
            exp: iat.saturating_add(cfg.refresh_ttl_secs),
            jti: random_id(),
            typ: TYP_REFRESH.into(),
        };
        let token = self.sign(&claims)?;
        let record = RefreshToken {
            jti: claims.jti,
            session_id: session,
            issued_at: now,
            // Exactly the token's own expiry, so store and token agree.
            expires_at: Timestamp::from_millis(claims.exp.saturating_mul(1000)),
            used_at: None,
        };
        Ok((token, record))
    }

    /// Verifies signature (RS256 only), kid, iss, aud, typ and exp against
    /// `now` (zero leeway), returning the raw claims.
    fn verify_typed(
        &self,
        token: &str,
        now: Timestamp,
        typ: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let header = jwt::header(token)?;
        if header.alg != "RS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.inner.by_kid.get(kid))
            .and_then(|&i| self.inner.verify_keys.get(i))
            .ok_or(TokenError::UnknownKey)?;

        let cfg = &self.inner.cfg;
        let mut validation = Validation::new(Algorithm::RS256);
        // Expiry is checked below against the caller's clock, not the system's.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map_err(|e| jwt::map_error(&e))?;
        let claims = data.claims;

        if claims.get("typ").and_then(|v| v.as_str()) != Some(typ) {
            return Err(TokenError::WrongType);
        }
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .ok_or(TokenError::Malformed)?;
        if exp.saturating_mul(1000) <= now.millis() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Verifies signature (RS256 only — reject "none", HS256 and every
    /// other alg), kid known, iss, aud, typ == "access", and exp > now
    /// (the given `now`, zero leeway).
    pub fn verify_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let claims = self.verify_typed(token, now, TYP_ACCESS)?;
        serde_json::from_value(claims).map_err(|_| TokenError::Malformed)
    }

    /// Like [`TokenIssuer::verify_access`] for refresh tokens (typ ==
    /// "refresh"). Whether the jti is still unused is the caller's check.
    pub fn verify_refresh(&self, token: &str, now: Timestamp) -> Result<RefreshClaims, TokenError> {
        let claims = self.verify_typed(token, now, TYP_REFRESH)?;
        serde_json::from_value(claims).map_err(|_| TokenError::Malformed)
    }

    /// The public keys as a JWKS document for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .inner
            .verify_keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "RSA",
                    "kid": k.kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": k.n,
                    "e": k.e,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}
