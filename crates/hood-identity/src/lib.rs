//! Identity primitives for Hood: password hashing, the installation's
//! envelope (master) key, RS256 session tokens, API key secrets and
//! verification of tokens from an external OIDC issuer.
//!
//! Everything here is real cryptography with no storage: callers load and
//! persist the records (`SigningKey`, `RefreshToken`, `ApiKey`) themselves,
//! and pass `now` in so that expiry is testable.

pub mod api_keys;
pub mod credential_cache;
pub mod envelope;
pub mod errors;
mod jwt;
pub mod master_key;
pub mod oidc;
pub mod password;
pub mod presign;
pub mod s3_keys;
pub mod sealed_box;
pub mod tasks;
pub mod tokens;

pub use errors::{IdentityError, TokenError};
