//! Shared test helpers: a sample notification and the test SMTP server.
#![allow(dead_code)]

pub mod smtp;

use hood_notify::{Notification, Notifier, NotifierConfig};
use std::time::Duration;

pub fn notification() -> Notification {
    Notification {
        delivery_id: "dlv_01HZX".into(),
        event: "incident.opened".into(),
        incident_id: "inc_42".into(),
        org_id: "org_7".into(),
        category: "node_down".into(),
        severity: "critical".into(),
        title: "Node eth-main-1 is down".into(),
        detail: "No heartbeat for 120 s.".into(),
        node_id: Some("nod_9".into()),
        chain: Some("ethereum".into()),
        escalation_level: 0,
        occurred_at_ms: 1_700_000_000_000,
    }
}

pub fn notifier() -> Notifier {
    notifier_with(NotifierConfig {
        timeout: Duration::from_secs(5),
        telegram_api_base: None,
        smtp_hello_name: "hood.test".into(),
    })
}

pub fn notifier_with(cfg: NotifierConfig) -> Notifier {
    Notifier::new(cfg).expect("notifier")
}

/// Every secret the tests use; none may appear in an error or a Debug.
pub const SECRETS: &[&str] = &[
    "whsec_TopSecretSigningKey",
    "T0000/B0000/SlackPathSecret",
    "SlackPathSecret",
    "123456:TelegramBotTokenSecret",
    "TelegramBotTokenSecret",
    "SmtpPassw0rdSecret",
];

pub fn assert_no_secret(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "secret {s:?} leaked in {text:?}");
    }
}
