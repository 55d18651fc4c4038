//! Where the artifact bytes live, chosen by one URL:
//!
//! * `file:///var/lib/hood/artifacts`: a directory (embedded mode; `hood up`
//!   uses `$HOOD_HOME/artifacts`, see [`StoreLocation::embedded`]).
//! * `s3://bucket/optional/prefix?endpoint=http://127.0.0.1:9000&region=eu-central-1`:
//!   an S3-compatible bucket (cluster mode). Query parameters: `endpoint`
//!   (omit for AWS itself), `region` (default from `AWS_DEFAULT_REGION`/
//!   `AWS_REGION`, else `us-east-1`), `allow_http` (default: true exactly when
//!   the endpoint is `http://`), `virtual_hosted_style` (default false: path
//!   style, which every S3-compatible server speaks).
//!
//! Credentials never appear in the URL (it is logged and shown in errors):
//! they come from the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN` (or web identity / container credentials) variables.

use crate::ArtifactError;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Subdirectory of `$HOOD_HOME` that holds the embedded artifact store.
pub const EMBEDDED_DIR: &str = "artifacts";

/// A parsed artifact store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory on this machine (created when missing).
    Local { root: PathBuf },
    /// An S3-compatible bucket.
    S3(S3Location),
}

/// Bucket, key prefix and endpoint of an S3-compatible store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`;
    /// empty for the bucket root.
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server; `None` for AWS.
    pub endpoint: Option<String>,
    /// `None`: from the environment, else `us-east-1`.
    pub region: Option<String>,
    pub allow_http: bool,
    pub virtual_hosted_style: bool,
}

impl StoreLocation {
    /// The embedded-mode store: `$HOOD_HOME/artifacts`.
    pub fn embedded(home: &Path) -> Self {
        StoreLocation::Local {
            root: home.join(EMBEDDED_DIR),
        }
    }

    /// Parses a `file://` or `s3://` URL (see the module documentation).
    pub fn parse(raw: &str) -> Result<Self, ArtifactError> {
        let url = url::Url::parse(raw.trim())
            .map_err(|e| config_error(format!("`{}` is not a URL: {e}", redact(raw))))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config_error(
                "credentials do not belong in the artifact store URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        match url.scheme() {
            "file" => parse_file(&url),
            "s3" => parse_s3(&url),
            other => Err(config_error(format!(
                "unsupported scheme `{other}` (expected file:///path or s3://bucket/prefix)"
            ))),
        }
    }

    /// Opens the object store (no request is made; S3 credentials are read
    /// from the environment). A local root is created when missing.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, ArtifactError> {
        match self {
            StoreLocation::Local { root } => {
                std::fs::create_dir_all(root)
                    .map_err(|e| config_error(format!("cannot create {}: {e}", root.display())))?;
                let fs = LocalFileSystem::new_with_prefix(root)?;
                Ok(Arc::new(fs))
            }
            StoreLocation::S3(s3) => {
                let store = s3.builder().build()?;
                if s3.prefix.is_empty() {
                    Ok(Arc::new(store))
                } else {
                    Ok(Arc::new(PrefixStore::new(store, s3.prefix.as_str())))
                }
            }
        }
    }
}

impl S3Location {
    /// The builder: environment credentials first, then what the URL says
    /// (the URL wins for bucket, endpoint and region).
    pub fn builder(&self) -> AmazonS3Builder {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_allow_http(self.allow_http)
            .with_virtual_hosted_style_request(self.virtual_hosted_style);
        if let Some(endpoint) = &self.endpoint {
            b = b.with_endpoint(endpoint);
        }
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()));
        if let Some(region) = region {
            b = b.with_region(region);
        }
        b
    }
}

fn parse_file(url: &url::Url) -> Result<StoreLocation, ArtifactError> {
    match url.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(host) => {
            return Err(config_error(format!(
                "file URL names host `{host}`; use file:///absolute/path"
            )))
        }
    }
    if url.query().is_some() {
        return Err(config_error("file URLs take no query parameters".into()));
    }
    let root = url
        .to_file_path()
        .map_err(|()| config_error("file URL must hold an absolute path".into()))?;
    Ok(StoreLocation::Local { root })
}

fn parse_s3(url: &url::Url) -> Result<StoreLocation, ArtifactError> {
    let bucket = url.host_str().unwrap_or_default().to_owned();
    if !valid_bucket(&bucket) {
        return Err(config_error(format!(
            "`{bucket}` is not a bucket name (3-63 characters of a-z, 0-9, '.' and '-')"
        )));
    }
    let prefix = url.path().trim_matches('/').to_owned();
    if prefix
        .split('/')
        .any(|seg| seg == "." || seg == ".." || (seg.is_empty() && !prefix.is_empty()))
    {
        return Err(config_error(format!(
            "`{prefix}` is not a usable key prefix"
        )));
    }
    let mut endpoint = None;
    let mut region = None;
    let mut allow_http = None;
    let mut virtual_hosted_style = false;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "endpoint" => {
                let e = url::Url::parse(&value).map_err(|e| {
                    config_error(format!("endpoint `{}` is not a URL: {e}", redact(&value)))
                })?;
                if !matches!(e.scheme(), "http" | "https") || e.host_str().is_none() {
                    return Err(config_error(format!(
                        "endpoint `{}` must be http(s)://host[:port]",
                        redact(&value)
                    )));
                }
                if !e.username().is_empty() || e.password().is_some() {
                    return Err(config_error(
                        "credentials do not belong in the endpoint; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .into(),
                    ));
                }
                endpoint = Some(value.trim_end_matches('/').to_owned());
            }
            "region" if !value.is_empty() => region = Some(value.into_owned()),
            "allow_http" => allow_http = Some(parse_bool("allow_http", &value)?),
            "virtual_hosted_style" => {
                virtual_hosted_style = parse_bool("virtual_hosted_style", &value)?
            }
            other => {
                return Err(config_error(format!(
                    "unknown parameter `{other}` (known: endpoint, region, allow_http, virtual_hosted_style)"
                )))
            }
        }
    }
    let allow_http = allow_http.unwrap_or_else(|| {
        endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    });
    Ok(StoreLocation::S3(S3Location {
        bucket,
        prefix,
        endpoint,
        region,
        allow_http,
        virtual_hosted_style,
    }))
}

/// S3's rules, loosely: enough to refuse typos, not to re-implement AWS.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ArtifactError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(config_error(format!(
            "{key} must be true or false, not `{v}`"
        ))),
    }
}

fn config_error(msg: String) -> ArtifactError {
    ArtifactError::Config(msg)
}

/// Hides a password should one be embedded in a URL shown in an error.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Local { root } => write!(f, "file://{}", root.display()),
            StoreLocation::S3(s3) => {
                write!(f, "s3://{}/{}", s3.bucket, s3.prefix)?;
                if let Some(e) = &s3.endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn s3(raw: &str) -> S3Location {
        match StoreLocation::parse(raw).unwrap() {
            StoreLocation::S3(s) => s,
            other => panic!("expected s3, got {other:?}"),
        }
    }

    fn err(raw: &str) -> String {
        match StoreLocation::parse(raw) {
            Err(ArtifactError::Config(m)) => m,
            other => panic!("expected a config error for {raw}, got {other:?}"),
        }
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            StoreLocation::parse("file:///var/lib/hood/artifacts").unwrap(),
            StoreLocation::Local {
                root: PathBuf::from("/var/lib/hood/artifacts")
            }
        );
        assert_eq!(
            StoreLocation::parse("file://localhost/srv/a%20b").unwrap(),
            StoreLocation::Local {
                root: PathBuf::from("/srv/a b")
            }
        );
        assert!(err("file://otherhost/x").contains("otherhost"));
        assert!(err("file:///x?y=1").contains("query"));
        assert_eq!(
            StoreLocation::embedded(Path::new(".hood")),
            StoreLocation::Local {
                root: PathBuf::from(".hood/artifacts")
            }
        );
    }

    #[test]
    fn s3_urls_with_defaults() {
        let l = s3("s3://hood-artifacts");
        assert_eq!(
            l,
            S3Location {
                bucket: "hood-artifacts".into(),
                prefix: String::new(),
                endpoint: None,
                region: None,
                allow_http: false,
                virtual_hosted_style: false,
            }
        );
        assert_eq!(s3("s3://b.example/a/b/").prefix, "a/b");
    }

    #[test]
    fn s3_urls_with_an_s3_compatible_endpoint() {
        let l = s3(
            "s3://hood/prod/artifacts?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-central-1",
        );
        assert_eq!(l.bucket, "hood");
        assert_eq!(l.prefix, "prod/artifacts");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(l.region.as_deref(), Some("eu-central-1"));
        assert!(l.allow_http, "http endpoint implies allow_http");

        let l = s3("s3://hood?endpoint=https://minio.internal:9000/&allow_http=false&virtual_hosted_style=true");
        assert_eq!(l.endpoint.as_deref(), Some("https://minio.internal:9000"));
        assert!(!l.allow_http);
        assert!(l.virtual_hosted_style);
        assert!(
            s3("s3://hood?endpoint=https://x:1&allow_http=1").allow_http,
            "explicit wins"
        );
    }

    #[test]
    fn bad_s3_urls_say_what_is_wrong() {
        assert!(err("s3://UPPER").contains("bucket"));
        assert!(err("s3://ab").contains("bucket"));
        assert!(err("s3:///prefix-only").contains("bucket"));
        assert!(err("s3://hood?colour=blue").contains("colour"));
        assert!(err("s3://hood?allow_http=maybe").contains("allow_http"));
        assert!(err("s3://hood?endpoint=ftp://x").contains("http"));
        assert!(err("s3://hood?endpoint=not%20a%20url").contains("endpoint"));
        // Dot segments are resolved by URL parsing, so they cannot escape.
        assert_eq!(s3("s3://hood/a/../b").prefix, "b");
        assert!(err("s3://hood/a//b").contains("prefix"));
        assert!(err("gs://hood").contains("scheme"));
        assert!(err("not a url").contains("not a URL"));
    }

    #[test]
    fn credentials_in_urls_are_refused_and_never_echoed() {
        let m = err("s3://AKIA:hunter2@hood");
        assert!(m.contains("AWS_ACCESS_KEY_ID"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
        let m = err("s3://hood?endpoint=http://u:hunter2@127.0.0.1:9000");
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn s3_builds_without_contacting_anything() {
        // Building only assembles configuration; no request is made, so
        // this works without a server. (There is no S3 server here to test
        // against; see the crate docs.)
        let loc = StoreLocation::parse("s3://hood/p?endpoint=http://127.0.0.1:1&region=x").unwrap();
        loc.open().unwrap();
        let bare = StoreLocation::parse("s3://hood").unwrap();
        bare.open().unwrap();
        assert_eq!(
            loc.to_string(),
            "s3://hood/p at http://127.0.0.1:1",
            "display shows no secret"
        );
    }

    #[test]
    fn local_root_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested/artifacts");
        let loc = StoreLocation::parse(&format!("file://{}", root.display())).unwrap();
        loc.open().unwrap();
        assert!(root.is_dir());
    }
}
