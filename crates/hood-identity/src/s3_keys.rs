//! S3 access keys: an access key id (public, `HOOD` and 16 base32
//! characters, the shape of AWS's `AKIA…` ids, so S3 tools accept it) and
//! a 40-character secret. SigV4 signs requests with the secret itself, so
//! unlike an API key it cannot be stored as a hash: it is sealed under the
//! master key, bound to its access key id.

use crate::errors::IdentityError;
use crate::master_key::MasterKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

/// Every access key id Hood issues starts with this.
pub const ACCESS_KEY_PREFIX: &str = "HOOD";
const ID_RANDOM_CHARS: usize = 16;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new key pair; the secret is shown once and then only kept sealed.
#[derive(Clone)]
pub struct GeneratedS3Key {
    pub access_key_id: String,
    pub secret: String,
}

impl std::fmt::Debug for GeneratedS3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedS3Key")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Generates a key pair from the OS RNG.
pub fn generate_s3_key() -> GeneratedS3Key {
    let mut rng = rand::rngs::OsRng;
    let mut id = String::with_capacity(ACCESS_KEY_PREFIX.len() + ID_RANDOM_CHARS);
    id.push_str(ACCESS_KEY_PREFIX);
    let mut raw = [0u8; ID_RANDOM_CHARS];
    rng.fill_bytes(&mut raw);
    // 256 is a multiple of 32: every symbol is equally likely.
    id.extend(raw.iter().map(|b| char::from(BASE32[usize::from(b % 32)])));
    let mut secret = [0u8; 30];
    rng.fill_bytes(&mut secret);
    GeneratedS3Key {
        access_key_id: id,
        secret: URL_SAFE_NO_PAD.encode(secret),
    }
}

/// Whether `id` is shaped like an access key id Hood issues (a cheap
/// refusal before any lookup).
pub fn is_access_key_id(id: &str) -> bool {
    id.len() == ACCESS_KEY_PREFIX.len() + ID_RANDOM_CHARS
        && id.starts_with(ACCESS_KEY_PREFIX)
        && id[ACCESS_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| BASE32.contains(&b))
}

fn associated_data(access_key_id: &str) -> Vec<u8> {
    format!("hood s3 secret {access_key_id}").into_bytes()
}

/// Seals a secret for storage, bound to its access key id.
pub fn seal_secret(
    master: &MasterKey,
    access_key_id: &str,
    secret: &str,
) -> Result<Vec<u8>, IdentityError> {
    master.seal(secret.as_bytes(), &associated_data(access_key_id))
}

/// Opens a sealed secret; fails if it was sealed for another id.
pub fn open_secret(
    master: &MasterKey,
    access_key_id: &str,
    sealed: &[u8],
) -> Result<String, IdentityError> {
    let plain = master.open(sealed, &associated_data(access_key_id))?;
    String::from_utf8(plain).map_err(|_| IdentityError::Crypto("sealed secret is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shaped_like_s3_keys_and_distinct() {
        let a = generate_s3_key();
        let b = generate_s3_key();
        assert_eq!(a.access_key_id.len(), 20);
        assert_eq!(a.secret.len(), 40);
        assert!(is_access_key_id(&a.access_key_id));
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret, b.secret);
        assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(!is_access_key_id("HOODabcdefghijklmnop"));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_key() {
        let master = MasterKey::generate();
        let key = generate_s3_key();
        let sealed = seal_secret(&master, &key.access_key_id, &key.secret).unwrap();
        assert!(!sealed
            .windows(key.secret.len())
            .any(|w| w == key.secret.as_bytes()));
        assert_eq!(
            open_secret(&master, &key.access_key_id, &sealed).unwrap(),
            key.secret
        );
        let other = generate_s3_key();
        assert!(open_secret(&master, &other.access_key_id, &sealed).is_err());
        assert!(open_secret(&MasterKey::generate(), &key.access_key_id, &sealed).is_err());
    }
}
