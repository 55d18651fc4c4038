//! The short human text shared by Slack, Telegram and email.

use crate::Notification;

/// Longest subject line, in characters.
const MAX_SUBJECT_CHARS: usize = 200;

/// The first line: `[CRITICAL] node_down opened: <title>`.
fn headline(n: &Notification) -> String {
    let severity = one_line(&n.severity).to_uppercase();
    let category = one_line(&n.category);
    let title = one_line(&n.title);
    let what = match n.event.as_str() {
        "incident.opened" => format!("{category} opened"),
        "incident.escalated" => format!("{category} escalated (level {})", n.escalation_level),
        "incident.resolved" => format!("{category} resolved"),
        "test" => "test notification".to_owned(),
        other => format!("{category} {}", one_line(other)),
    };
    format!("[{severity}] {what}: {title}")
}

/// The subject of an email: the headline, cut to a sensible length.
pub fn render_subject(n: &Notification) -> String {
    let line = headline(n);
    if line.chars().count() > MAX_SUBJECT_CHARS {
        line.chars().take(MAX_SUBJECT_CHARS - 1).collect::<String>() + "…"
    } else {
        line
    }
}

/// The short text every human-facing channel sends:
///
/// ```text
/// [CRITICAL] node_down opened: Node eth-1 is down
/// No heartbeat for 120 s.
/// node nod_1 · chain ethereum · incident inc_1
/// ```
pub fn render_text(n: &Notification) -> String {
    let mut out = headline(n);
    let detail = n.detail.replace("\r\n", "\n").replace('\r', "\n");
    let detail = detail.trim_end();
    if !detail.is_empty() {
        out.push('\n');
        out.push_str(detail);
    }
    let mut context = Vec::new();
    if let Some(node) = n.node_id.as_deref().filter(|s| !s.is_empty()) {
        context.push(format!("node {}", one_line(node)));
    }
    if let Some(chain) = n.chain.as_deref().filter(|s| !s.is_empty()) {
        context.push(format!("chain {}", one_line(chain)));
    }
    if !n.incident_id.is_empty() {
        context.push(format!("incident {}", one_line(&n.incident_id)));
    }
    if !context.is_empty() {
        out.push('\n');
        out.push_str(&context.join(" · "));
    }
    out
}

/// `s` with control characters (newlines included) turned into spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn n() -> Notification {
        Notification {
            delivery_id: "dlv_1".into(),
            event: "incident.opened".into(),
            incident_id: "inc_1".into(),
            org_id: "org_1".into(),
            category: "node_down".into(),
            severity: "critical".into(),
            title: "Node eth-1 is down".into(),
            detail: "No heartbeat for 120 s.".into(),
            node_id: Some("nod_1".into()),
            chain: Some("ethereum".into()),
            escalation_level: 0,
            occurred_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn opened() {
        assert_eq!(
            render_text(&n()),
            "[CRITICAL] node_down opened: Node eth-1 is down\n\
             No heartbeat for 120 s.\n\
             node nod_1 · chain ethereum · incident inc_1"
        );
    }

    #[test]
    fn escalated_resolved_test_and_unknown_events() {
        let mut x = n();
        x.event = "incident.escalated".into();
        x.escalation_level = 2;
        assert!(render_text(&x).starts_with("[CRITICAL] node_down escalated (level 2): "));
        x.event = "incident.resolved".into();
        x.severity = "info".into();
        assert!(render_text(&x).starts_with("[INFO] node_down resolved: "));
        x.event = "test".into();
        assert!(render_text(&x).starts_with("[INFO] test notification: "));
        x.event = "incident.muted".into();
        assert!(render_text(&x).starts_with("[INFO] node_down incident.muted: "));
    }

    #[test]
    fn optional_parts_are_left_out() {
        let mut x = n();
        x.detail = String::new();
        x.node_id = None;
        x.chain = None;
        assert_eq!(
            render_text(&x),
            "[CRITICAL] node_down opened: Node eth-1 is down\nincident inc_1"
        );
    }

    #[test]
    fn title_is_one_line_and_detail_keeps_its_lines() {
        let mut x = n();
        x.title = "evil\r\nBcc: someone@example.com".into();
        x.detail = "line one\r\nline two\r\n".into();
        let text = render_text(&x);
        assert_eq!(
            text.lines().next().unwrap(),
            "[CRITICAL] node_down opened: evil  Bcc: someone@example.com"
        );
        assert!(text.contains("\nline one\nline two\nnode"));
        assert!(!render_subject(&x).contains('\n'));
    }

    #[test]
    fn subject_is_bounded() {
        let mut x = n();
        x.title = "é".repeat(1000);
        let s = render_subject(&x);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with('…'));
    }
}
