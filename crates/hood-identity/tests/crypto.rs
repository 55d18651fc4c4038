//! Password hashing, the master key and API key secrets, with real crypto.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_identity::api_keys::{
    generate_api_key, hash_secret, parse_api_key, verify_secret, API_KEY_PREFIX,
};
use hood_identity::master_key::MasterKey;
use hood_identity::password::{burn_verify_time, hash_password, verify_password};
use hood_identity::IdentityError;

// ---------------------------------------------------------------- password

#[test]
fn password_round_trip_and_wrong_password() {
    let phc = hash_password("correct horse battery staple").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(verify_password("correct horse battery staple", &phc));
    assert!(!verify_password("correct horse battery stapler", &phc));
    assert!(!verify_password("", &phc));
}

#[test]
fn password_hashes_are_salted() {
    let a = hash_password("same").unwrap();
    let b = hash_password("same").unwrap();
    assert_ne!(a, b);
    assert!(verify_password("same", &a) && verify_password("same", &b));
}

#[test]
fn malformed_hashes_never_verify() {
    for bad in [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA",
    ] {
        assert!(!verify_password("password", bad), "{bad:?}");
    }
}

#[test]
fn burn_verify_time_does_not_panic() {
    burn_verify_time("anything");
    burn_verify_time("");
}

// -------------------------------------------------------------- master key

#[test]
fn seal_open_round_trip() {
    let key = MasterKey::generate();
    let sealed = key.seal(b"private key bytes", b"signing-key:k1").unwrap();
    assert_eq!(sealed[0], 1, "version byte");
    assert_eq!(sealed.len(), 1 + 12 + 17 + 16);
    assert_eq!(
        key.open(&sealed, b"signing-key:k1").unwrap(),
        b"private key bytes"
    );
    // Random nonces: sealing twice gives different blobs.
    assert_ne!(
        sealed,
        key.seal(b"private key bytes", b"signing-key:k1").unwrap()
    );
    // Empty plaintext works too.
    let empty = key.seal(b"", b"").unwrap();
    assert_eq!(key.open(&empty, b"").unwrap(), b"");
}

#[test]
fn open_fails_on_wrong_aad_tampering_or_other_key() {
    let key = MasterKey::generate();
    let sealed = key.seal(b"secret", b"signing-key:k1").unwrap();
    assert!(matches!(
        key.open(&sealed, b"signing-key:k2"),
        Err(IdentityError::Crypto(_))
    ));
    for i in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x01;
        assert!(key.open(&tampered, b"signing-key:k1").is_err(), "byte {i}");
    }
    assert!(key
        .open(&sealed[..sealed.len() - 1], b"signing-key:k1")
        .is_err());
    assert!(key.open(&[], b"signing-key:k1").is_err());
    let other = MasterKey::generate();
    assert!(other.open(&sealed, b"signing-key:k1").is_err());
}

#[test]
fn base64_round_trip_and_validation() {
    let key = MasterKey::generate();
    let b64 = key.to_base64();
    let back = MasterKey::from_base64(&format!("{b64}\n")).unwrap();
    assert_eq!(back.to_base64(), b64);
    let sealed = key.seal(b"x", b"a").unwrap();
    assert_eq!(back.open(&sealed, b"a").unwrap(), b"x");

    assert!(matches!(
        MasterKey::from_base64("not base64!"),
        Err(IdentityError::Key(_))
    ));
    // 31 bytes.
    let short = base64_of(&[7u8; 31]);
    assert!(matches!(
        MasterKey::from_base64(&short),
        Err(IdentityError::Key(_))
    ));
    assert!(MasterKey::from_base64("").is_err());
}

#[test]
fn debug_never_prints_key_bytes() {
    let key = MasterKey::generate();
    let dbg = format!("{key:?}");
    assert_eq!(dbg, "MasterKey(..)");
    assert!(!dbg.contains(&key.to_base64()));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("hood-identity-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_or_create_creates_private_file_and_reloads_same_key() {
    let tmp = TempDir::new();
    let path = tmp.0.join("nested/dir/master.key");
    let (key, created) = MasterKey::load_or_create(&path).unwrap();
    assert!(created);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }
    let (again, created_again) = MasterKey::load_or_create(&path).unwrap();
    assert!(!created_again);
    assert_eq!(again.to_base64(), key.to_base64());
    let sealed = key.seal(b"node key", b"node:1").unwrap();
    assert_eq!(again.open(&sealed, b"node:1").unwrap(), b"node key");
}

#[test]
fn load_or_create_rejects_corrupt_file() {
    let tmp = TempDir::new();
    let path = tmp.0.join("master.key");
    std::fs::write(&path, "definitely not a key").unwrap();
    assert!(matches!(
        MasterKey::load_or_create(&path),
        Err(IdentityError::Key(_))
    ));
    // A directory in the way is an I/O error that names the path.
    let dir_path = tmp.0.join("a-dir");
    std::fs::create_dir(&dir_path).unwrap();
    match MasterKey::load_or_create(&dir_path) {
        Err(IdentityError::Io { path, .. }) => assert_eq!(path, dir_path),
        other => panic!("expected Io error, got {other:?}"),
    }
}

// ----------------------------------------------------------------- api keys

#[test]
fn api_key_generate_parse_verify() {
    let key = generate_api_key();
    assert!(key.token.starts_with(API_KEY_PREFIX));
    assert_eq!(key.prefix.len(), 12);
    assert!(key
        .prefix
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let (prefix, secret) = parse_api_key(&key.token).unwrap();
    assert_eq!(prefix, key.prefix);
    assert_eq!(secret.len(), 43);
    assert_eq!(key.token, format!("hood_{prefix}_{secret}"));
    assert_eq!(hash_secret(secret), key.secret_hash);
    assert_eq!(key.secret_hash.len(), 64);
    assert!(verify_secret(secret, &key.secret_hash));

    let other = generate_api_key();
    assert_ne!(other.token, key.token);
    let (_, other_secret) = parse_api_key(&other.token).unwrap();
    assert!(!verify_secret(other_secret, &key.secret_hash));
    assert!(!verify_secret(secret, ""));
    assert!(!verify_secret(secret, &key.secret_hash[..63]));
}

#[test]
fn api_key_debug_redacts_token() {
    let key = generate_api_key();
    let dbg = format!("{key:?}");
    let (_, secret) = parse_api_key(&key.token).unwrap();
    assert!(!dbg.contains(&key.token));
    assert!(!dbg.contains(secret));
    assert!(dbg.contains(&key.prefix));
}

#[test]
fn secrets_containing_underscores_parse() {
    let secret = "_".repeat(43);
    let token = format!("hood_0123456789ab_{secret}");
    assert_eq!(
        parse_api_key(&token),
        Some(("0123456789ab", secret.as_str()))
    );
}

#[test]
fn malformed_api_keys_are_rejected() {
    let key = generate_api_key();
    let (prefix, secret) = parse_api_key(&key.token).unwrap();
    let cases = [
        String::new(),
        "hood_".into(),
        "hood__".into(),
        format!("hood_{prefix}"),
        format!("hood_{prefix}_"),
        format!("hood__{secret}"),
        format!("hood_{secret}"),
        format!("hodd_{prefix}_{secret}"),
        format!("HOOD_{prefix}_{secret}"),
        format!("{prefix}_{secret}"),
        format!("xhood_{prefix}_{secret}"),
        format!(
            "hood_{}_{secret}",
            prefix.to_uppercase().replace(char::is_numeric, "A")
        ),
        format!("hood_{}_{secret}", &prefix[..11]),
        format!("hood_{prefix}0_{secret}"),
        format!("hood_{prefix}_{}", &secret[..42]),
        format!("hood_{prefix}_{secret}A"),
        format!("hood_{prefix}_{}=", &secret[..42]),
        format!("hood_{prefix}_{secret} "),
        format!("Bearer hood_{prefix}_{secret}"),
        "eyJhbGciOiJSUzI1NiJ9.e30.sig".into(),
    ];
    for case in &cases {
        assert_eq!(parse_api_key(case), None, "{case:?}");
    }
}
