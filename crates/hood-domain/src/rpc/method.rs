//! JSON-RPC method names and the patterns scopes match them with.

use super::RpcConfigError;

/// Longest method name (or pattern) accepted in a scope or a price list.
pub const MAX_METHOD_LEN: usize = 128;

fn is_method_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// A method name: 1–128 characters of `A-Z a-z 0-9 _ . -`, starting with a
/// letter.
pub(super) fn check_method_name(field: &'static str, s: &str) -> Result<(), RpcConfigError> {
    let bad = |reason| RpcConfigError::InvalidMethod {
        field,
        value: s.to_owned(),
        reason,
    };
    if s.is_empty() || s.len() > MAX_METHOD_LEN {
        return Err(bad("must be 1-128 characters"));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("must start with a letter"));
    }
    if !s.bytes().all(is_method_char) {
        return Err(bad("may hold only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

/// A method name, or a prefix followed by one trailing `*` (`debug_*`).
pub(super) fn check_method_pattern(field: &'static str, s: &str) -> Result<(), RpcConfigError> {
    match s.strip_suffix('*') {
        Some(prefix) => {
            if prefix.contains('*') {
                return Err(RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason: "only one trailing '*' is allowed",
                });
            }
            if prefix.is_empty() {
                return Err(RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason: "a pattern needs a prefix, like debug_* (leave the list empty for every method)",
                });
            }
            check_method_name(field, prefix).map_err(|e| match e {
                RpcConfigError::InvalidMethod { reason, .. } => RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason,
                },
                other => other,
            })
        }
        None => check_method_name(field, s),
    }
}

/// Whether `method` matches a scope pattern (exact, or prefix with `*`).
pub fn method_matches(pattern: &str, method: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => method.starts_with(prefix),
        None => pattern == method,
    }
}
