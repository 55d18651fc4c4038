//! Input rules for artifact names, versions, checksums and media types.
//!
//! Names and versions end up in URL paths, log lines and (through the
//! catalog) in host file names, so they are held to a small charset that
//! cannot express a path separator, a parent directory or a control
//! character. The object keys themselves never contain them (content is
//! stored by SHA-256), but refusing early gives the operator a clear message
//! instead of a surprise later on a host.

use hood_domain::validate::FieldError;

/// Longest artifact name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest version accepted.
pub const MAX_VERSION_LEN: usize = 64;
/// Media type recorded when the pusher names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// An artifact name: 1–128 characters of `A-Z a-z 0-9 . _ -`, starting with
/// a letter or digit (`anvil-linux-amd64`, `reth-x86_64-unknown-linux-gnu`).
pub fn name(s: &str) -> Result<(), FieldError> {
    token(
        "name",
        s,
        MAX_NAME_LEN,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'),
        "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
    )
}

/// A version: 1–64 characters of `A-Z a-z 0-9 . _ - +`, starting with a
/// letter or digit (`1.5.1`, `v8.0.1`, `1.0.0-rc.1+build.5`).
pub fn version(s: &str) -> Result<(), FieldError> {
    token(
        "version",
        s,
        MAX_VERSION_LEN,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'),
        "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-' and '+', starting with a letter or digit",
    )
}

fn token(
    field: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
    message: &str,
) -> Result<(), FieldError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(allowed);
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, message))
    }
}

/// Parses a SHA-256 given by a user: 64 hex characters, either case.
/// Returns the lowercase form, which is what the catalog stores.
pub fn sha256(field: &'static str, s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(FieldError::new(
            field,
            "must be a SHA-256 checksum: 64 hexadecimal characters",
        ))
    }
}

/// A media type such as `application/gzip`: `type/subtype` of visible
/// ASCII, at most 127 characters, parameters allowed.
pub fn content_type(s: &str) -> Result<(), FieldError> {
    let essence = s.split(';').next().unwrap_or_default().trim();
    let ok = s.len() <= 127
        && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && essence
            .split_once('/')
            .is_some_and(|(t, st)| !t.is_empty() && !st.is_empty() && !st.contains('/'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "content_type",
            "must be a media type like application/octet-stream",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn shipped_artifact_names_and_versions_are_valid() {
        for n in [
            "anvil",
            "anvil-linux-amd64",
            "reth-x86_64-unknown-linux-gnu",
            "bitcoin-core-x86_64-linux-gnu",
            "agave-validator-x86_64-unknown-linux-gnu",
            "a",
            "A.b_c-9",
        ] {
            assert_eq!(name(n), Ok(()), "{n}");
        }
        for v in [
            "1.5.1",
            "30.2",
            "v8.0.1",
            "1.0.0-rc.1+build.5",
            "nightly_2024",
        ] {
            assert_eq!(version(v), Ok(()), "{v}");
        }
    }

    #[test]
    fn traversal_separators_and_oddities_are_refused() {
        for n in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "/abs",
            ".hidden",
            "-flag",
            "_x",
            "a b",
            "a\0b",
            "a\nb",
            "ä",
            "a%2fb",
            "a:b",
            "a+b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = name(n).unwrap_err();
            assert_eq!(err.field, "name", "{n:?}");
        }
        for v in ["", "..", "../1", "1/2", ".1", "1 2", "1\t", &"1".repeat(65)] {
            let err = version(v).unwrap_err();
            assert_eq!(err.field, "version", "{v:?}");
        }
        assert_eq!(name(&"x".repeat(MAX_NAME_LEN)), Ok(()));
        assert_eq!(version(&"1".repeat(MAX_VERSION_LEN)), Ok(()));
    }

    #[test]
    fn checksums_are_normalised_to_lowercase() {
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(sha256("sha256", upper).unwrap(), upper.to_ascii_lowercase());
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert_eq!(
                sha256("X-Hood-Sha256", bad).unwrap_err().field,
                "X-Hood-Sha256"
            );
        }
    }

    #[test]
    fn media_types() {
        for ok in [
            "application/octet-stream",
            "application/gzip",
            "text/plain; charset=utf-8",
        ] {
            assert_eq!(content_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "binary",
            "a/",
            "/b",
            "a/b/c",
            "a/b\n",
            &format!("a/{}", "b".repeat(200)),
        ] {
            assert!(content_type(bad).is_err(), "{bad:?}");
        }
    }
}
