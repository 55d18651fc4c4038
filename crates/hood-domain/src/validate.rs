//! Input rules shared by the API and the CLI. Each returns a message that
//! names the field and what is wrong, fit to show to a user.

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A slug: 2–63 chars of `a-z`, `0-9` and `-`, starting with a letter, not
/// ending with `-`. Safe in URLs, DNS labels and file names.
pub fn slug(field: &'static str, s: &str) -> Result<(), FieldError> {
    let ok_len = (2..=63).contains(&s.len());
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = s.starts_with(|c: char| c.is_ascii_lowercase()) && !s.ends_with('-');
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be 2-63 characters of a-z, 0-9 and '-', start with a letter and not end with '-'",
        ))
    }
}

/// A human-readable name: 1–200 chars, no control characters.
pub fn display_name(field: &'static str, s: &str) -> Result<(), FieldError> {
    let trimmed = s.trim();
    if trimmed.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// A plausible e-mail address (one `@`, non-empty local part, dotted domain).
/// Deliverability is not our business; catching typos early is.
pub fn email(field: &'static str, s: &str) -> Result<(), FieldError> {
    let bad = || FieldError::new(field, "must be an e-mail address like ops@example.com");
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(())
}

/// Password policy: at least 12 characters, at most 1024 bytes (argon2
/// accepts more, but an unbounded input is a denial-of-service lever).
pub fn password(field: &'static str, s: &str) -> Result<(), FieldError> {
    if s.chars().count() < 12 {
        return Err(FieldError::new(field, "must be at least 12 characters"));
    }
    if s.len() > 1024 {
        return Err(FieldError::new(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["ab", "acme", "acme-2", "a1"] {
            assert!(slug("slug", good).is_ok(), "{good}");
        }
        for bad in ["", "a", "-a", "a-", "Acme", "ac me", "1ab", &"a".repeat(64)] {
            assert!(slug("slug", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(email("email", "ops@example.com").is_ok());
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "ops@example",
            "o ps@example.com",
            "a@b@c.d",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(password("password", "short").is_err());
        assert!(password("password", "long enough pw").is_ok());
        assert!(display_name("name", "  ").is_err());
        assert!(display_name("name", "Acme Corp").is_ok());
        assert!(display_name("name", "bad\u{0}name").is_err());
    }
}
