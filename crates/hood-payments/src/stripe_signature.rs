//! Stripe webhook signatures, as Stripe documents them.
//!
//! The `Stripe-Signature` header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//! with possibly other schemes (`v0=…`) that we ignore. Each `v1` is
//! `hex(HMAC-SHA256(secret, "{t}.{raw body}"))`; several appear while an
//! endpoint's secret is being rolled, and any one matching is enough. The
//! secret is the whole `whsec_…` string, used as the HMAC key as is.
//!
//! Verification must run on the raw body bytes: re-serialised JSON would not
//! match.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The tolerance Stripe's own libraries use, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The only signature scheme Stripe currently signs live events with.
const SCHEME: &str = "v1";

/// Why a webhook's signature was refused. The messages never include the
/// secret or the signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Stripe-Signature header is malformed: {0}")]
    Malformed(String),
    #[error("Stripe-Signature header has no timestamp (t=)")]
    MissingTimestamp,
    #[error("Stripe-Signature header has no v1 signature")]
    NoSignatures,
    #[error("no v1 signature in the Stripe-Signature header matches the payload")]
    Mismatch,
    #[error(
        "Stripe-Signature timestamp {timestamp} is outside the tolerance of {tolerance_secs} s \
         (now {now})"
    )]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        tolerance_secs: i64,
    },
}

/// Checks `header` against the raw `payload`, then that its timestamp is
/// within `tolerance_secs` of `now_unix` in either direction (a replayed or
/// a post-dated event is refused). Returns the signed timestamp.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let parsed = parse_header(header)?;
    let mac = keyed(secret, parsed.timestamp, payload)?;
    // `verify_slice` compares in constant time; a candidate of the wrong
    // length (or not hex) cannot match and reveals nothing about the key.
    let matched = parsed.signatures.iter().any(|candidate| {
        hex::decode(candidate)
            .map(|bytes| mac.clone().verify_slice(&bytes).is_ok())
            .unwrap_or(false)
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature so a refusal for age means a genuine (but
    // replayed or badly clocked) event, not a forgery.
    let skew = (i128::from(now_unix) - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_secs) {
        return Err(SignatureError::OutsideTolerance {
            timestamp: parsed.timestamp,
            now: now_unix,
            tolerance_secs,
        });
    }
    Ok(parsed.timestamp)
}

/// The header value Stripe would send for `payload` signed at `t`
/// (`t=<t>,v1=<hex>`): for tests and the fake server.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let signature = match keyed(secret, t, payload) {
        Ok(mac) => hex::encode(mac.finalize().into_bytes()),
        // HMAC takes keys of any length, so this cannot happen; an empty
        // signature would simply never verify.
        Err(_) => String::new(),
    };
    format!("t={t},{SCHEME}={signature}")
}

struct ParsedHeader<'a> {
    timestamp: i64,
    signatures: Vec<&'a str>,
}

fn parse_header(header: &str) -> Result<ParsedHeader<'_>, SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::Malformed("the header is empty".into()));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let item = item.trim();
        let Some((key, value)) = item.split_once('=') else {
            return Err(SignatureError::Malformed(
                "an element is not of the form key=value".into(),
            ));
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one timestamp".into()));
                }
                let t = value.parse::<i64>().map_err(|_| {
                    SignatureError::Malformed("the timestamp is not an integer".into())
                })?;
                timestamp = Some(t);
            }
            SCHEME => signatures.push(value),
            // Other schemes (v0 in test mode, future ones) are not ours to check.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignatures);
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

/// The MAC state after absorbing `"{t}.{payload}"`.
fn keyed(secret: &str, t: i64, payload: &[u8]) -> Result<HmacSha256, SignatureError> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .map_err(|_| SignatureError::Malformed("unusable secret".into()))?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn accepts_its_own_signature() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(verify(BODY, &header, SECRET, NOW, 300), Ok(NOW));
    }

    #[test]
    fn known_answer() {
        // Independent check: HMAC-SHA256(key="key", "1.{}") computed with
        // Python's hmac module.
        let header = sign(b"{}", "key", 1);
        assert_eq!(
            header,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn any_v1_may_match_during_secret_rotation() {
        let old = sign(BODY, "whsec_old", NOW);
        let new = sign(BODY, SECRET, NOW);
        let old_sig = old.split_once(",v1=").map(|(_, s)| s).unwrap_or_default();
        let new_sig = new.split_once(",v1=").map(|(_, s)| s).unwrap_or_default();
        let header = format!("t={NOW},v1={old_sig},v1={new_sig},v0=deadbeef");
        assert_eq!(verify(BODY, &header, SECRET, NOW, 300), Ok(NOW));
        assert_eq!(verify(BODY, &header, "whsec_old", NOW, 300), Ok(NOW));
        assert_eq!(
            verify(BODY, &header, "whsec_other", NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_wrong_secret_and_tampered_body() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(
            verify(BODY, &header, "whsec_wrong", NOW, 300),
            Err(SignatureError::Mismatch)
        );
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(&tampered, &header, SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_a_timestamp_outside_the_tolerance_either_way() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(verify(BODY, &header, SECRET, NOW + 300, 300), Ok(NOW));
        assert_eq!(verify(BODY, &header, SECRET, NOW - 300, 300), Ok(NOW));
        assert!(matches!(
            verify(BODY, &header, SECRET, NOW + 301, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            verify(BODY, &header, SECRET, NOW - 301, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        // Extreme values do not overflow.
        let header = sign(BODY, SECRET, i64::MIN);
        assert!(matches!(
            verify(BODY, &header, SECRET, i64::MAX, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn refuses_garbled_headers() {
        let sig = sign(BODY, SECRET, NOW);
        let v1 = sig.split_once(',').map(|(_, s)| s).unwrap_or_default();
        assert_eq!(
            verify(BODY, v1, SECRET, NOW, 300),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(BODY, &format!("t={NOW},v0=abc"), SECRET, NOW, 300),
            Err(SignatureError::NoSignatures)
        );
        for garbage in [
            "",
            "   ",
            "garbage",
            "t=abc,v1=00",
            "t=1,t=2,v1=00",
            "t=,v1=00",
        ] {
            assert!(
                matches!(
                    verify(BODY, garbage, SECRET, NOW, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{garbage:?}"
            );
        }
        assert_eq!(
            verify(BODY, &format!("t={NOW},v1=not-hex"), SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn messages_name_the_problem_without_secrets() {
        let err = verify(BODY, "t=1,v1=00", SECRET, NOW, 300).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("matches"), "{text}");
        assert!(!text.contains(SECRET));
    }
}
