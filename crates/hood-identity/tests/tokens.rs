//! RS256 session tokens, with real RSA keys.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hood_domain::identity::{Role, SigningKey, User};
use hood_domain::{OrgId, SessionId, Timestamp, UserId};
use hood_identity::master_key::MasterKey;
use hood_identity::tokens::{generate_signing_key, TokenConfig, TokenIssuer};
use hood_identity::{IdentityError, TokenError};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use std::sync::OnceLock;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

/// RSA generation is the slow part: do it once per test binary.
struct Keys {
    master: MasterKey,
    /// Older key.
    a: SigningKey,
    /// Newer key (same master).
    b: SigningKey,
    /// Unrelated key under another master.
    other_master: MasterKey,
    c: SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let master = MasterKey::generate();
        let other_master = MasterKey::generate();
        let (a, b, c) = std::thread::scope(|s| {
            let a = s.spawn(|| generate_signing_key(&master, T0).unwrap());
            let b = s.spawn(|| generate_signing_key(&master, T0.plus_secs(86_400)).unwrap());
            let c = s.spawn(|| generate_signing_key(&other_master, T0).unwrap());
            (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
        });
        Keys {
            master,
            a,
            b,
            other_master,
            c,
        }
    })
}

fn issuer(keys_: &[SigningKey]) -> TokenIssuer {
    TokenIssuer::new(keys_, &keys().master, TokenConfig::default()).unwrap()
}

fn user() -> User {
    User {
        id: UserId::from_uuid(Uuid::new_v4()),
        org_id: OrgId::from_uuid(Uuid::new_v4()),
        email: "ada@example.com".into(),
        display_name: "Ada".into(),
        role: Role::Operator,
        platform_admin: false,
        password_hash: None,
        disabled: false,
        created_at: T0,
    }
}

fn session() -> SessionId {
    SessionId::from_uuid(Uuid::new_v4())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn decode_json(segment: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// The unsealed private key of `key`, for forging tokens in tests.
fn private_key(master: &MasterKey, key: &SigningKey) -> rsa::RsaPrivateKey {
    let der = master
        .open(
            &key.sealed_private_key,
            format!("signing-key:{}", key.kid).as_bytes(),
        )
        .unwrap();
    rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap()
}

#[test]
fn default_config() {
    let cfg = TokenConfig::default();
    assert_eq!(cfg.issuer, "hood");
    assert_eq!(cfg.audience, "hood-api");
    assert_eq!(cfg.access_ttl_secs, 900);
    assert_eq!(cfg.refresh_ttl_secs, 604_800);
}

#[test]
fn generated_key_is_sealed_and_bound_to_its_kid() {
    let k = keys();
    assert!(k.a.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_ne!(k.a.kid, k.b.kid);
    assert_eq!(k.a.created_at, T0);
    assert_eq!(k.a.retired_at, None);
    let private = private_key(&k.master, &k.a);
    let public = rsa::RsaPublicKey::from_public_key_pem(&k.a.public_key_pem).unwrap();
    assert_eq!(private.to_public_key(), public);
    assert_eq!(public.size(), 256);
    // The sealed blob opens only under its own kid.
    let wrong_aad = format!("signing-key:{}", k.b.kid);
    assert!(k
        .master
        .open(&k.a.sealed_private_key, wrong_aad.as_bytes())
        .is_err());
}

#[test]
fn access_token_round_trip() {
    let iss = issuer(&[keys().a.clone()]);
    let u = user();
    let sid = session();
    let (token, claims) = iss.issue_access(&u, sid, T0).unwrap();
    assert_eq!(claims.iss, "hood");
    assert_eq!(claims.aud, "hood-api");
    assert_eq!(claims.sub, u.id.to_string());
    assert_eq!(claims.org, u.org_id.to_string());
    assert_eq!(claims.sid, sid.to_string());
    assert_eq!(claims.role, "operator");
    assert_eq!(claims.typ, "access");
    assert_eq!(claims.iat, T0.secs());
    assert_eq!(claims.exp, T0.secs() + 900);

    let header = decode_json(&segments(&token)[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], keys().a.kid.as_str());

    assert_eq!(iss.verify_access(&token, T0).unwrap(), claims);
    assert_eq!(
        iss.verify_access(&token, T0.plus_secs(899)).unwrap(),
        claims
    );
    // Clones share keys and verify the same.
    assert_eq!(iss.clone().verify_access(&token, T0).unwrap(), claims);
    // jti is unique per token.
    let (_, claims2) = iss.issue_access(&u, sid, T0).unwrap();
    assert_ne!(claims.jti, claims2.jti);
}

#[test]
fn expired_access_token_is_refused() {
    let iss = issuer(&[keys().a.clone()]);
    let (token, claims) = iss.issue_access(&user(), session(), T0).unwrap();
    let exp = Timestamp::from_millis(claims.exp * 1000);
    assert!(iss.verify_access(&token, exp.plus_millis(-1)).is_ok());
    assert_eq!(iss.verify_access(&token, exp), Err(TokenError::Expired));
    assert_eq!(
        iss.verify_access(&token, T0.plus_secs(3600)),
        Err(TokenError::Expired)
    );
}

#[test]
fn tampered_payload_is_refused() {
    let iss = issuer(&[keys().a.clone()]);
    let (token, _) = iss.issue_access(&user(), session(), T0).unwrap();
    let parts = segments(&token);
    let mut payload = decode_json(&parts[1]);
    payload["role"] = "admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_eq!(
        iss.verify_access(&forged, T0),
        Err(TokenError::BadSignature)
    );
    // Dropping the signature altogether.
    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        iss.verify_access(&unsigned, T0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn token_of_another_key_set_is_refused() {
    let k = keys();
    let ours = issuer(std::slice::from_ref(&k.a));
    let theirs = TokenIssuer::new(
        std::slice::from_ref(&k.c),
        &k.other_master,
        TokenConfig::default(),
    )
    .unwrap();
    let (token, claims) = theirs.issue_access(&user(), session(), T0).unwrap();
    assert_eq!(ours.verify_access(&token, T0), Err(TokenError::UnknownKey));

    // Signed by the other key but claiming our kid.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(k.a.kid.clone());
    let pem = private_key(&k.other_master, &k.c)
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let forged = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
    assert_eq!(
        ours.verify_access(&forged, T0),
        Err(TokenError::BadSignature)
    );

    // No kid at all.
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &enc,
    )
    .unwrap();
    assert_eq!(ours.verify_access(&no_kid, T0), Err(TokenError::UnknownKey));
}

#[test]
fn alg_none_and_hs256_are_refused() {
    let k = keys();
    let iss = issuer(std::slice::from_ref(&k.a));
    let (_, claims) = iss.issue_access(&user(), session(), T0).unwrap();
    let payload = b64(&serde_json::to_vec(&claims).unwrap());

    for alg in ["none", "None", "NONE", "RS512", "PS256", "ES256", "EdDSA"] {
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": k.a.kid});
        let h = b64(&serde_json::to_vec(&header).unwrap());
        for sig in ["", "c2ln"] {
            let token = format!("{h}.{payload}.{sig}");
            assert_eq!(
                iss.verify_access(&token, T0),
                Err(TokenError::WrongAlgorithm),
                "alg {alg}"
            );
        }
    }

    // HS256 keyed with the public key: the classic algorithm confusion.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(k.a.kid.clone());
    for secret in [k.a.public_key_pem.as_bytes(), b"secret".as_slice()] {
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(
            iss.verify_access(&token, T0),
            Err(TokenError::WrongAlgorithm)
        );
    }
    // No alg at all.
    let h = b64(br#"{"typ":"JWT"}"#);
    assert_eq!(
        iss.verify_access(&format!("{h}.{payload}.x"), T0),
        Err(TokenError::Malformed)
    );
}

#[test]
fn garbage_is_malformed() {
    let iss = issuer(&[keys().a.clone()]);
    for bad in ["", "abc", "a.b", "a.b.c", "...", "a.b.c.d", "Bearer x.y.z"] {
        assert_eq!(
            iss.verify_access(bad, T0),
            Err(TokenError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn refresh_token_round_trip_and_type_confusion() {
    let iss = issuer(&[keys().a.clone()]);
    let u = user();
    let sid = session();
    let (refresh, record) = iss.issue_refresh(&u, sid, T0).unwrap();
    let claims = iss.verify_refresh(&refresh, T0).unwrap();
    assert_eq!(claims.typ, "refresh");
    assert_eq!(claims.sub, u.id.to_string());
    assert_eq!(claims.sid, sid.to_string());
    assert_eq!(claims.exp, T0.secs() + 604_800);
    assert_eq!(record.jti, claims.jti);
    assert_eq!(record.session_id, sid);
    assert_eq!(record.issued_at, T0);
    assert_eq!(record.expires_at, T0.plus_secs(604_800));
    assert_eq!(record.used_at, None);

    assert_eq!(iss.verify_access(&refresh, T0), Err(TokenError::WrongType));
    let (access, _) = iss.issue_access(&u, sid, T0).unwrap();
    assert_eq!(iss.verify_refresh(&access, T0), Err(TokenError::WrongType));
    assert_eq!(
        iss.verify_refresh(&refresh, record.expires_at),
        Err(TokenError::Expired)
    );
}

#[test]
fn wrong_audience_or_issuer_is_refused() {
    let k = keys();
    let iss = issuer(std::slice::from_ref(&k.a));
    let (token, _) = iss.issue_access(&user(), session(), T0).unwrap();

    let other_aud = TokenIssuer::new(
        std::slice::from_ref(&k.a),
        &k.master,
        TokenConfig {
            audience: "someone-else".into(),
            ..TokenConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        other_aud.verify_access(&token, T0),
        Err(TokenError::WrongAudience)
    );

    let other_iss = TokenIssuer::new(
        std::slice::from_ref(&k.a),
        &k.master,
        TokenConfig {
            issuer: "not-hood".into(),
            ..TokenConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        other_iss.verify_access(&token, T0),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn key_rotation_signs_with_newest_and_verifies_old() {
    let k = keys();
    let old = issuer(std::slice::from_ref(&k.a));
    let (old_token, old_claims) = old.issue_access(&user(), session(), T0).unwrap();

    let rotated = issuer(&[k.b.clone(), k.a.clone()]);
    assert_eq!(rotated.signing_kid(), k.b.kid);
    // Order of the slice does not matter: newest created_at signs.
    assert_eq!(issuer(&[k.a.clone(), k.b.clone()]).signing_kid(), k.b.kid);
    assert_eq!(rotated.verify_access(&old_token, T0).unwrap(), old_claims);
    let (new_token, _) = rotated.issue_access(&user(), session(), T0).unwrap();
    assert_eq!(
        decode_json(&segments(&new_token)[0])["kid"],
        k.b.kid.as_str()
    );
    // The old key set does not know the new key.
    assert_eq!(
        old.verify_access(&new_token, T0),
        Err(TokenError::UnknownKey)
    );

    // A retired key no longer signs, even if newer, but still verifies.
    let mut b_retired = k.b.clone();
    b_retired.retired_at = Some(T0);
    let iss = issuer(&[k.a.clone(), b_retired.clone()]);
    assert_eq!(iss.signing_kid(), k.a.kid);
    assert!(iss.verify_access(&new_token, T0).is_ok());
}

#[test]
fn issuer_construction_errors() {
    let k = keys();
    let cfg = TokenConfig::default;
    assert!(matches!(
        TokenIssuer::new(&[], &k.master, cfg()),
        Err(IdentityError::Config(_))
    ));
    let mut retired = k.a.clone();
    retired.retired_at = Some(T0);
    assert!(matches!(
        TokenIssuer::new(&[retired], &k.master, cfg()),
        Err(IdentityError::Config(_))
    ));
    // Sealed under another master key.
    assert!(matches!(
        TokenIssuer::new(std::slice::from_ref(&k.a), &k.other_master, cfg()),
        Err(IdentityError::Crypto(_))
    ));
    // Sealed blob moved to another kid: the AAD no longer matches.
    let mut moved = k.a.clone();
    moved.kid = "some-other-kid".into();
    assert!(matches!(
        TokenIssuer::new(&[moved], &k.master, cfg()),
        Err(IdentityError::Crypto(_))
    ));
    // Private and public halves from different keys.
    let mut mixed = k.a.clone();
    mixed.public_key_pem = k.b.public_key_pem.clone();
    assert!(matches!(
        TokenIssuer::new(&[mixed], &k.master, cfg()),
        Err(IdentityError::Key(_))
    ));
    let mut bad_pem = k.a.clone();
    bad_pem.public_key_pem = "nope".into();
    assert!(matches!(
        TokenIssuer::new(&[bad_pem], &k.master, cfg()),
        Err(IdentityError::Key(_))
    ));
    assert!(matches!(
        TokenIssuer::new(&[k.a.clone(), k.a.clone()], &k.master, cfg()),
        Err(IdentityError::Config(_))
    ));
}

#[test]
fn jwks_publishes_every_key_with_its_modulus_and_exponent() {
    let k = keys();
    let iss = issuer(&[k.b.clone(), k.a.clone()]);
    let jwks = iss.jwks();
    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(published.len(), 2);
    for key in [&k.a, &k.b] {
        let jwk = published
            .iter()
            .find(|j| j["kid"] == key.kid.as_str())
            .unwrap();
        let public = rsa::RsaPublicKey::from_public_key_pem(&key.public_key_pem).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["n"], b64(&public.n().to_bytes_be()).as_str());
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk.as_object().unwrap().len(), 6);
    }
    // The published JWKS is enough for a third party to verify our tokens.
    let (token, _) = iss.issue_access(&user(), session(), T0).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = set.find(iss.signing_kid()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.set_audience(&["hood-api"]);
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    );
    assert!(decoded.is_ok());
}

#[test]
fn errors_never_echo_the_token() {
    let iss = issuer(&[keys().a.clone()]);
    let (token, _) = iss.issue_access(&user(), session(), T0).unwrap();
    let err = iss.verify_access(&token, T0.plus_secs(10_000)).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&token));
    assert!(!shown.contains(&segments(&token)[1]));
    assert!(!format!("{iss:?}").contains("PRIVATE"));
}
