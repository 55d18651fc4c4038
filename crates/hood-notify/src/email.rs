//! The RFC 5322 message an email notification sends, built with lettre's
//! message builder: it encodes a non-ASCII subject as RFC 2047 words and
//! picks a 7-bit-clean transfer encoding for the body, so the message never
//! needs 8BITMIME and no header can be injected.

use crate::render::{render_subject, render_text};
use crate::{Notification, SendError};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::Message;
use std::time::SystemTime;

const CHANNEL: &str = "email";

/// The message to `to` from `from`, dated `date`. The addresses were
/// validated (`looks_like_address`) before this runs; one lettre still
/// rejects is a permanent [`SendError::Refused`].
pub(crate) fn build_message(
    n: &Notification,
    from: &str,
    to: &[String],
    hello_name: &str,
    date: SystemTime,
) -> Result<Message, SendError> {
    let mailbox = |field: &str, addr: &str| {
        addr.parse::<Mailbox>().map_err(|e| SendError::Refused {
            channel: CHANNEL,
            message: format!("{field} is not a usable address: {e}"),
        })
    };
    let raw_header = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    let mut builder = Message::builder()
        .from(mailbox("from", from)?)
        .subject(render_subject(n))
        .date(date)
        .message_id(Some(format!(
            "<hood.{}@{}>",
            token(&n.delivery_id),
            token(hello_name.trim_matches(['[', ']']))
        )))
        // RFC 3834: an automatic message; responders should not answer it.
        .raw_header(raw_header("Auto-Submitted", "auto-generated".to_owned()))
        .raw_header(raw_header("X-Hood-Delivery", token(&n.delivery_id)))
        .raw_header(raw_header("X-Hood-Event", token(&n.event)))
        .header(ContentType::TEXT_PLAIN);
    for (i, addr) in to.iter().enumerate() {
        builder = builder.to(mailbox(&format!("to[{i}]"), addr)?);
    }
    builder
        .body(render_text(n))
        .map_err(|e| SendError::Refused {
            channel: CHANNEL,
            message: format!("cannot build the message: {e}"),
        })
}

/// `s` restricted to characters safe anywhere in a header and a msg-id.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if t.is_empty() {
        "none".to_owned()
    } else {
        t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn n() -> Notification {
        Notification {
            delivery_id: "dlv_01J0".into(),
            event: "incident.opened".into(),
            incident_id: "inc_1".into(),
            org_id: "org_1".into(),
            category: "node_down".into(),
            severity: "critical".into(),
            title: "Node down".into(),
            detail: "details".into(),
            node_id: None,
            chain: None,
            escalation_level: 0,
            occurred_at_ms: 0,
        }
    }

    fn formatted(n: &Notification) -> String {
        let m = build_message(
            n,
            "hood@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "mx.hood.test",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn message_has_the_headers_and_envelope() {
        let m = build_message(
            &n(),
            "hood@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "mx.hood.test",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let env = m.envelope();
        assert_eq!(env.from().unwrap().to_string(), "hood@example.com");
        let to: Vec<String> = env.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["a@example.com", "b@example.com"]);
        let text = String::from_utf8(m.formatted()).unwrap();
        let head = text.split_once("\r\n\r\n").unwrap().0;
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert!(
            lines.contains(&"Date: Tue, 14 Nov 2023 22:13:20 +0000"),
            "{head}"
        );
        assert!(lines.contains(&"From: hood@example.com"), "{head}");
        assert!(
            lines.contains(&"To: a@example.com, b@example.com"),
            "{head}"
        );
        assert!(
            lines.contains(&"Subject: [CRITICAL] node_down opened: Node down"),
            "{head}"
        );
        assert!(lines.contains(&"Message-ID: <hood.dlv_01J0@mx.hood.test>"));
        assert!(lines.contains(&"Auto-Submitted: auto-generated"));
        assert!(lines.contains(&"X-Hood-Delivery: dlv_01J0"));
        assert!(lines.contains(&"X-Hood-Event: incident.opened"));
        assert!(
            lines.contains(&"Content-Type: text/plain; charset=utf-8"),
            "{head}"
        );
    }

    #[test]
    fn non_ascii_text_stays_seven_bit() {
        let mut x = n();
        x.title = "Nœud en panne — ethereum".into();
        x.detail = "é · ok".into();
        let text = formatted(&x);
        assert!(text.is_ascii(), "{text}");
        let head = text.split_once("\r\n\r\n").unwrap().0;
        // Only the words that need it are encoded (RFC 2047).
        assert!(
            head.contains("Subject: [CRITICAL] node_down opened: =?utf-8?b?"),
            "{head}"
        );
    }

    #[test]
    fn header_values_cannot_inject() {
        let mut x = n();
        x.delivery_id = "a>\r\nBcc: evil@example.com".into();
        x.event = "e\r\nBcc: evil@example.com".into();
        x.title = "t\r\nBcc: evil@example.com".into();
        let text = formatted(&x);
        let head = text.split_once("\r\n\r\n").unwrap().0;
        assert!(!head.split("\r\n").any(|l| l.starts_with("Bcc:")), "{head}");
    }

    #[test]
    fn an_address_lettre_refuses_is_permanent() {
        let err = build_message(
            &n(),
            "hood@example.com",
            &["not an address".into()],
            "h",
            UNIX_EPOCH,
        )
        .unwrap_err();
        assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("to[0]"), "{err}");
    }
}
