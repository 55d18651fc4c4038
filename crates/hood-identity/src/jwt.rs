//! Small JWT helpers shared by our own tokens and the OIDC verifier.
//!
//! The header is parsed by hand before `jsonwebtoken` sees the token so that
//! `alg: "none"` (which `jsonwebtoken` cannot even represent) and any other
//! unexpected algorithm are reported as `WrongAlgorithm` rather than as a
//! generic parse failure.

use crate::errors::TokenError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

/// Longest token we are willing to parse: bounds the work an
/// unauthenticated caller can make us do. Real tokens are well under 2 KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The header fields we route on.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// Critical extensions: we implement none, so RFC 7515 §4.1.11 says any
    /// token that lists some must be rejected.
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// Splits a compact JWS into its three segments.
pub(crate) fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(TokenError::Malformed),
    }
}

/// Decodes and parses a base64url JSON segment.
fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Parses the (unverified) header of a token.
pub(crate) fn header(token: &str) -> Result<RawHeader, TokenError> {
    let (h, _, _) = split(token)?;
    let header: RawHeader = decode_segment(h)?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    Ok(header)
}

/// Parses the (unverified) payload of a token.
pub(crate) fn payload(token: &str) -> Result<serde_json::Value, TokenError> {
    let (_, p, _) = split(token)?;
    decode_segment(p)
}

/// Maps a `jsonwebtoken` failure onto our client-facing error.
pub(crate) fn map_error(e: &jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenError::WrongAlgorithm,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        // A key that cannot verify (wrong family, bad encoding) means the
        // token does not match any key we trust.
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            TokenError::BadSignature
        }
        _ => TokenError::Malformed,
    }
}

/// base64url (no padding) of a big-endian unsigned integer, as JWK wants.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_wrong_shapes() {
        assert_eq!(split(""), Err(TokenError::Malformed));
        assert_eq!(split("a.b"), Err(TokenError::Malformed));
        assert_eq!(split("a.b.c.d"), Err(TokenError::Malformed));
        assert_eq!(split(".b.c"), Err(TokenError::Malformed));
        assert!(split("a.b.").is_ok());
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(split(&long), Err(TokenError::Malformed));
    }

    #[test]
    fn header_rejects_crit_and_garbage() {
        let crit = format!("{}.e30.", b64url(br#"{"alg":"RS256","crit":["x"]}"#));
        assert!(matches!(header(&crit), Err(TokenError::Malformed)));
        assert!(matches!(header("!!.e30."), Err(TokenError::Malformed)));
        let ok = format!("{}.e30.", b64url(br#"{"alg":"none"}"#));
        assert_eq!(header(&ok).map(|h| h.alg).ok().as_deref(), Some("none"));
    }
}
