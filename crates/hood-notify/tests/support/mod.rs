//! Shared test helpers: a sample notification and notifiers whose
//! destination policy admits the loopback receivers the tests start.
#![allow(dead_code)]

use hood_notify::{DestinationPolicy, Notification, Notifier, NotifierConfig};
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

/// The tests' receivers listen on loopback, which the default policy
/// refuses: allow it explicitly, as an operator would.
pub fn loopback_allowed() -> DestinationPolicy {
    DestinationPolicy::parse("127.0.0.0/8,::1/128").expect("allow-list")
}

/// The settings of [`notifier`]: short timeout, loopback allowed.
pub fn config() -> NotifierConfig {
    NotifierConfig {
        timeout: Duration::from_secs(5),
        telegram_api_base: None,
        smtp_hello_name: "hood.test".into(),
        destinations: loopback_allowed(),
    }
}

pub fn notifier() -> Notifier {
    notifier_with(config())
}

/// A notifier with the default (strict) destination policy.
pub fn strict_notifier() -> Notifier {
    notifier_with(NotifierConfig {
        destinations: DestinationPolicy::default(),
        ..config()
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
