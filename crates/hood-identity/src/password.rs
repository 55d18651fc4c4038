//! Password hashing with argon2id.
//!
//! Parameters follow the OWASP recommendation (19 MiB, 2 passes, 1 lane):
//! expensive enough to make offline guessing slow, cheap enough that a login
//! does not starve the server. Verification reads the parameters from the
//! stored PHC string, so they can be raised later without breaking old
//! hashes.

use crate::errors::IdentityError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Number of passes.
pub const ITERATIONS: u32 = 2;
/// Degree of parallelism.
pub const PARALLELISM: u32 = 1;

/// A hash of a random password with the current parameters. Verifying
/// against it costs the same as verifying a real user's hash, which is all
/// `burn_verify_time` needs; nobody knows the password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$uYiBcc92do7eVD2AXm14ow$HNktsvtLQ80wgIr3RCzvfO/8JJn2XlhXc/089zkH2tk";

fn hasher() -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| IdentityError::Config(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A random password for a user nobody chose one for (the first
/// administrator): 144 bits, URL-safe base64, 24 characters.
pub fn generate_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hashes `password` into a PHC string (argon2id, random 128-bit salt).
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let mut salt_bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt_bytes)
        .map_err(|e| IdentityError::Crypto(format!("random salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| IdentityError::Crypto(format!("salt encoding: {e}")))?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| IdentityError::Crypto(format!("password hashing: {e}")))?;
    Ok(hash.to_string())
}

/// True when `password` matches the PHC string `phc`. A malformed or
/// unsupported hash simply does not match: a corrupt row must lock the user
/// out, not crash the login handler.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Only argon2 hashes are accepted; the PHC string supplies its own
    // parameters, `Argon2::default()` only provides the implementation.
    if !matches!(
        parsed.algorithm.as_str(),
        "argon2id" | "argon2i" | "argon2d"
    ) {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one real verification. Call it when the user does
/// not exist (or has no password) so that response time does not reveal
/// which e-mail addresses are registered.
pub fn burn_verify_time(password: &str) {
    let _ = std::hint::black_box(verify_password(password, DUMMY_HASH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate_password());
        assert!(verify_password(&a, &hash_password(&a).unwrap()));
    }

    #[test]
    fn dummy_hash_is_well_formed_with_current_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).ok();
        let parsed = parsed.as_ref().and_then(|p| Params::try_from(p).ok());
        let params = parsed.map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
        assert_eq!(params, Some((MEMORY_KIB, ITERATIONS, PARALLELISM)));
    }
}
