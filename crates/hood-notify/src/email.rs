//! The RFC 5322 message an email notification sends: headers (no header
//! injection possible: every value is one line), a UTF-8 text body in
//! quoted-printable (7-bit clean, so no 8BITMIME needed).

use crate::render::{render_subject, render_text};
use crate::Notification;
use base64::Engine as _;

/// The message, CRLF line endings, ending in CRLF, not yet dot-stuffed.
pub(crate) fn build_message(
    n: &Notification,
    from: &str,
    to: &[String],
    hello_name: &str,
    now_s: i64,
) -> String {
    let mut headers = vec![
        format!("Date: {}", rfc5322_date(now_s)),
        format!("From: {from}"),
        fold_address_list("To", to),
        format!("Subject: {}", encode_subject(&render_subject(n))),
        format!(
            "Message-ID: <hood.{}@{}>",
            token(&n.delivery_id),
            one_line(hello_name)
        ),
        "MIME-Version: 1.0".to_owned(),
        "Content-Type: text/plain; charset=utf-8".to_owned(),
        "Content-Transfer-Encoding: quoted-printable".to_owned(),
        // RFC 3834: an automatic message; responders should not answer it.
        "Auto-Submitted: auto-generated".to_owned(),
        format!("X-Hood-Delivery: {}", token(&n.delivery_id)),
        format!("X-Hood-Event: {}", token(&n.event)),
    ];
    headers.push(String::new());
    let mut message = headers.join("\r\n");
    message.push_str("\r\n");
    message.push_str(&quoted_printable(&render_text(n)));
    message.push_str("\r\n");
    message
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

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != ' ').collect()
}

/// `To: a, b, ...`, folded so no line passes 78 characters when avoidable.
/// The addresses are validated (`looks_like_address`) before this runs.
fn fold_address_list(name: &str, addrs: &[String]) -> String {
    let mut out = format!("{name}:");
    let mut line_len = out.len();
    for (i, addr) in addrs.iter().enumerate() {
        let sep = if i + 1 < addrs.len() { "," } else { "" };
        let piece = format!(" {addr}{sep}");
        if line_len + piece.len() > 78 && i > 0 {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push_str(&piece);
        line_len += piece.len();
    }
    out
}

/// The subject as is when it is plain printable ASCII, else as RFC 2047
/// `=?utf-8?B?...?=` encoded-words of at most 75 characters, folded.
fn encode_subject(subject: &str) -> String {
    let plain = subject.bytes().all(|b| (0x20..0x7f).contains(&b)) && !subject.contains("=?");
    if plain {
        return subject.to_owned();
    }
    // 45 bytes of UTF-8 → 60 base64 characters → 72-character word.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2045 quoted-printable of UTF-8 text, CRLF line endings, encoded
/// lines at most 76 characters (soft breaks `=`).
pub(crate) fn quoted_printable(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len() + normalized.len() / 8);
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut col = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal =
                ((b == b' ' || b == b'\t') && !last) || ((33..=126).contains(&b) && b != b'=');
            let token = if literal {
                char::from(b).to_string()
            } else {
                format!("={b:02X}")
            };
            // Leave room for the soft-break `=` itself.
            if col + token.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            out.push_str(&token);
            col += token.len();
        }
    }
    out
}

/// `Tue, 14 Nov 2023 22:13:20 +0000` for Unix seconds (UTC).
pub(crate) fn rfc5322_date(unix_s: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(4_107_542_399),
            "Sun, 28 Feb 2100 23:59:59 +0000"
        );
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
    }

    #[test]
    fn quoted_printable_rules() {
        assert_eq!(quoted_printable("plain text"), "plain text");
        assert_eq!(quoted_printable("a=b"), "a=3Db");
        assert_eq!(
            quoted_printable("trailing \nnext\t"),
            "trailing=20\r\nnext=09"
        );
        assert_eq!(quoted_printable("é · ok"), "=C3=A9 =C2=B7 ok");
        assert_eq!(quoted_printable(".dot\r\nline"), ".dot\r\nline");
        let long = quoted_printable(&"x".repeat(200));
        assert!(long.split("\r\n").all(|l| l.len() <= 76), "{long}");
        assert_eq!(long.replace("=\r\n", ""), "x".repeat(200));
        let long_utf8 = quoted_printable(&"é".repeat(100));
        for l in long_utf8.split("\r\n") {
            assert!(l.len() <= 76, "{l}");
            // Never split inside an =XX escape: every `=` but a final soft
            // break starts one.
            let body = l.strip_suffix('=').unwrap_or(l);
            for (i, _) in body.match_indices('=') {
                let esc = &body[i + 1..];
                assert!(
                    esc.len() >= 2 && esc.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit),
                    "{l}"
                );
            }
        }
    }

    #[test]
    fn subjects_are_encoded_only_when_needed() {
        assert_eq!(encode_subject("[CRITICAL] x"), "[CRITICAL] x");
        let enc = encode_subject("Nœud en panne — ethereum");
        assert!(enc.starts_with("=?utf-8?B?"), "{enc}");
        let long = encode_subject(&"é".repeat(100));
        for word in long.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
        }
        assert!(encode_subject("=?utf-8?Q?x?=").starts_with("=?utf-8?B?"));
    }

    #[test]
    fn message_has_the_headers_and_a_crlf_body() {
        let m = build_message(
            &n(),
            "hood@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "mx.hood.test",
            1_700_000_000,
        );
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert!(lines.contains(&"Date: Tue, 14 Nov 2023 22:13:20 +0000"));
        assert!(lines.contains(&"From: hood@example.com"));
        assert!(lines.contains(&"To: a@example.com, b@example.com"));
        assert!(lines.contains(&"Subject: [CRITICAL] node_down opened: Node down"));
        assert!(lines.contains(&"Message-ID: <hood.dlv_01J0@mx.hood.test>"));
        assert!(lines.contains(&"MIME-Version: 1.0"));
        assert!(lines.contains(&"Content-Type: text/plain; charset=utf-8"));
        assert!(lines.contains(&"Content-Transfer-Encoding: quoted-printable"));
        assert!(body.ends_with("\r\n"));
        assert!(!m.replace("\r\n", "").contains('\n'));
        assert!(!m.replace("\r\n", "").contains('\r'));
    }

    #[test]
    fn long_recipient_lists_fold() {
        let to: Vec<String> = (0..10)
            .map(|i| format!("recipient{i}@example.com"))
            .collect();
        let h = fold_address_list("To", &to);
        for line in h.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        assert_eq!(h.replace("\r\n", ""), format!("To: {}", to.join(", ")));
    }

    #[test]
    fn header_values_cannot_inject() {
        let mut x = n();
        x.delivery_id = "a>\r\nBcc: evil@example.com".into();
        x.title = "t\r\nBcc: evil@example.com".into();
        let m = build_message(&x, "hood@example.com", &["a@example.com".into()], "h", 0);
        let head = m.split_once("\r\n\r\n").unwrap().0;
        assert!(!head.split("\r\n").any(|l| l.starts_with("Bcc:")), "{head}");
    }
}
