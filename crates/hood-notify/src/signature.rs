//! The `Hood-Signature` webhook header: `t={unix seconds},v1={hex HMAC}`
//! where the HMAC-SHA256 under the channel's secret covers `"{t}.{body}"`.
//!
//! Receivers recompute the HMAC over the raw body and reject timestamps
//! outside a tolerance window, which bounds replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp_s: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first);
    // `new_from_slice` only fails for fixed-key-size MACs.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC-SHA256 accepts keys of every length")
    };
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Hood-Signature` header value for `body` sent at `timestamp_s`:
/// `t={timestamp_s},v1={hex hmac_sha256(secret, "{timestamp_s}.{body}")}`.
pub fn sign_webhook(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp_s, body).finalize().into_bytes();
    format!("t={timestamp_s},v1={}", hex::encode(tag))
}

/// Whether `header` is a valid `Hood-Signature` for `body` under `secret`,
/// with its timestamp within `tolerance_s` seconds of `now_s` (either side).
///
/// Several `v1=` entries are accepted (any one matching suffices, for secret
/// rotation); unknown entries are ignored. The comparison is constant-time.
pub fn verify_webhook_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    if tolerance_s < 0 {
        return false;
    }
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => match (timestamp, value.parse::<i64>()) {
                (None, Ok(t)) => timestamp = Some(t),
                // Two timestamps, or one that is not a number: refuse.
                _ => return false,
            },
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    candidates.push(bytes);
                }
            }
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    match now_s.checked_sub(t).map(i64::unsigned_abs) {
        Some(skew) if skew <= tolerance_s.unsigned_abs() => {}
        _ => return false,
    }
    let expected = mac(secret, t, body);
    candidates
        .iter()
        // `verify_slice` compares in constant time.
        .any(|candidate| expected.clone().verify_slice(candidate).is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"event":"incident.opened"}"#;
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn format_is_t_and_hex_v1() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        let (t, v1) = sig.split_once(',').unwrap();
        assert_eq!(t, format!("t={NOW}"));
        let hex_tag = v1.strip_prefix("v1=").unwrap();
        assert_eq!(hex_tag.len(), 64);
        assert!(hex_tag
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn known_answer() {
        // python3: hmac.new(b"key", b"42.hello", hashlib.sha256).hexdigest()
        assert_eq!(
            sign_webhook("key", 42, b"hello"),
            "t=42,v1=31e36c7e4eae5951f82aedfbfe720469e6418070434e048f1d1a846e4bbca7c6"
        );
    }

    #[test]
    fn round_trip_verifies() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        assert!(verify_webhook_signature(SECRET, &sig, BODY, NOW, 300));
        assert!(verify_webhook_signature(SECRET, &sig, BODY, NOW + 300, 300));
        assert!(verify_webhook_signature(SECRET, &sig, BODY, NOW - 300, 300));
    }

    #[test]
    fn wrong_secret_fails() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        assert!(!verify_webhook_signature("other", &sig, BODY, NOW, 300));
    }

    #[test]
    fn stale_or_future_timestamp_fails() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        assert!(!verify_webhook_signature(
            SECRET,
            &sig,
            BODY,
            NOW + 301,
            300
        ));
        assert!(!verify_webhook_signature(
            SECRET,
            &sig,
            BODY,
            NOW - 301,
            300
        ));
        assert!(!verify_webhook_signature(SECRET, &sig, BODY, NOW, -1));
        let extreme = sign_webhook(SECRET, i64::MIN, BODY);
        assert!(!verify_webhook_signature(
            SECRET,
            &extreme,
            BODY,
            i64::MAX,
            i64::MAX
        ));
    }

    #[test]
    fn tampered_body_or_timestamp_fails() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        assert!(!verify_webhook_signature(
            SECRET,
            &sig,
            br#"{"event":"incident.resolved"}"#,
            NOW,
            300
        ));
        let moved = sig.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert!(!verify_webhook_signature(SECRET, &moved, BODY, NOW, 300));
    }

    #[test]
    fn malformed_headers_fail() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        let v1 = sig.split_once(',').unwrap().1;
        for bad in [
            "",
            "garbage",
            v1,
            &format!("t={NOW}"),
            &format!("t=abc,{v1}"),
            &format!("t={NOW},t={NOW},{v1}"),
            &format!("t={NOW},v1=zz"),
            &format!("t={NOW},v1="),
        ] {
            assert!(
                !verify_webhook_signature(SECRET, bad, BODY, NOW, 300),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_of_several_v1_entries_may_match() {
        let sig = sign_webhook(SECRET, NOW, BODY);
        let v1 = sig.split_once(',').unwrap().1;
        let header = format!("t={NOW},v1={},{v1},v0=ignored", "ab".repeat(32));
        assert!(verify_webhook_signature(SECRET, &header, BODY, NOW, 300));
    }
}
