//! Who is looking at a console page: the signed-in session as handlers
//! see it, the form token, and the one-time flash of the next page.

use crate::backend::Caller;
use base64::Engine;
use hood_api::views::MeView;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The form field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "_csrf";

/// The browser's CSRF token, for forms to carry.
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub String);

/// A message shown once on the next page (after a redirect), and a secret
/// shown exactly once (a new key's token). Carried in a cookie that the
/// next page clears, so a reload shows neither again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Flash {
    pub message: String,
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_label: Option<String>,
}

impl Flash {
    pub(crate) fn info(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A signed-in browser: whom calls are made for and who that is.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub caller: Caller,
    pub me: Arc<MeView>,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Session {
    pub(crate) fn can(&self, permission: &str) -> bool {
        self.me.permissions.iter().any(|p| p == permission)
    }

    pub(crate) fn platform_admin(&self) -> bool {
        self.me.user.platform_admin && self.me.user.role == "admin"
    }
}
