//! Storage namespaces (Edd Cloud's storage, S3's buckets) and their
//! objects: names, keys, quotas and byte ranges. The bytes live in an
//! object store; these are the rules every path into it (Hood's API, the
//! S3 endpoint) applies the same way.

use crate::validate::FieldError;
use crate::{BlobId, NamespaceId, OrgId, Timestamp, UploadId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// The longest object key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// A namespace's name: 3–63 characters of `a-z`, `0-9` and `-`, starting
/// and ending with a letter or digit. S3's bucket rules without dots, so a
/// name is also a DNS label (virtual-hosted addressing, TLS wildcards).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamespaceName(String);

impl NamespaceName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::new("name", why.to_owned());
        if !(3..=63).contains(&raw.len()) {
            return Err(bad("must be 3 to 63 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("may hold only lowercase letters, digits and `-`"));
        }
        let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        if !edge_ok(raw.as_bytes().first()) || !edge_ok(raw.as_bytes().last()) {
            return Err(bad("must start and end with a letter or digit"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NamespaceName {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<NamespaceName> for String {
    fn from(n: NamespaceName) -> Self {
        n.0
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may read a namespace's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only the organization's callers (and presigned URLs).
    Private,
    /// Anyone may read; writing still needs the organization.
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "private" => Ok(Visibility::Private),
            "public" => Ok(Visibility::Public),
            other => Err(FieldError::new(
                "visibility",
                format!("`{other}` is neither `private` nor `public`"),
            )),
        }
    }
}

/// A namespace's limits. Both are enforced at write time, exactly: a write
/// that would end above either is refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_bytes: u64,
    pub max_objects: u64,
}

impl Quota {
    /// The largest quota a namespace may have: what a signed 64-bit column
    /// holds.
    pub const CEILING: u64 = i64::MAX as u64;

    pub fn new(max_bytes: u64, max_objects: u64) -> Result<Self, FieldError> {
        if max_bytes == 0 || max_bytes > Self::CEILING {
            return Err(FieldError::new(
                "max_bytes",
                format!("must be between 1 and {}", Self::CEILING),
            ));
        }
        if max_objects == 0 || max_objects > Self::CEILING {
            return Err(FieldError::new(
                "max_objects",
                format!("must be between 1 and {}", Self::CEILING),
            ));
        }
        Ok(Self {
            max_bytes,
            max_objects,
        })
    }
}

/// What a namespace holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("the namespace's byte quota ({limit} bytes) would be exceeded: it holds {used}, the write needs {needed} more")]
    Bytes { limit: u64, used: u64, needed: u64 },
    #[error("the namespace's object quota ({limit} objects) is reached")]
    Objects { limit: u64 },
}

impl Usage {
    /// The usage after writing `size` bytes under a key that held
    /// `replaced` bytes before (`None`: a new key), or why the quota
    /// refuses it. Ending exactly at a limit is allowed.
    pub fn after_write(
        self,
        quota: Quota,
        replaced: Option<u64>,
        size: u64,
    ) -> Result<Usage, QuotaExceeded> {
        let freed = replaced.unwrap_or(0);
        let objects = match replaced {
            Some(_) => self.objects,
            None => self.objects.saturating_add(1),
        };
        if objects > quota.max_objects {
            return Err(QuotaExceeded::Objects {
                limit: quota.max_objects,
            });
        }
        let bytes = self.bytes.saturating_sub(freed).saturating_add(size);
        if bytes > quota.max_bytes {
            return Err(QuotaExceeded::Bytes {
                limit: quota.max_bytes,
                used: self.bytes,
                needed: size.saturating_sub(freed),
            });
        }
        Ok(Usage { bytes, objects })
    }

    /// The usage after removing an object of `size` bytes.
    pub fn after_delete(self, size: u64) -> Usage {
        Usage {
            bytes: self.bytes.saturating_sub(size),
            objects: self.objects.saturating_sub(1),
        }
    }

    /// The most bytes one write may stream before it can no longer fit,
    /// given the key held `replaced` bytes: checked while the bytes arrive
    /// so a refused upload stops early instead of filling the disk.
    pub fn headroom(self, quota: Quota, replaced: Option<u64>) -> u64 {
        quota
            .max_bytes
            .saturating_sub(self.bytes.saturating_sub(replaced.unwrap_or(0)))
    }
}

/// A namespace's life: `active`, then `deleting` while its objects are
/// removed in batches (resumable after a crash), then gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceState {
    Active,
    Deleting,
}

impl NamespaceState {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceState::Active => "active",
            NamespaceState::Deleting => "deleting",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(NamespaceState::Active),
            "deleting" => Some(NamespaceState::Deleting),
            _ => None,
        }
    }
}

/// A namespace as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub id: NamespaceId,
    pub org_id: OrgId,
    pub name: NamespaceName,
    pub visibility: Visibility,
    pub quota: Quota,
    pub usage: Usage,
    pub state: NamespaceState,
    pub created_at: Timestamp,
}

/// An object key: 1–1024 bytes of UTF-8 without control characters, whose
/// `/`-separated segments are neither empty nor `.` or `..` (keys name
/// rows, never paths, but tools map them to files and must not escape).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |why: String| FieldError::new("key", why);
        if raw.is_empty() || raw.len() > MAX_KEY_BYTES {
            return Err(bad(format!("must be 1 to {MAX_KEY_BYTES} bytes")));
        }
        if raw.chars().any(char::is_control) {
            return Err(bad("may not hold control characters".into()));
        }
        if raw
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(bad(
                "has an empty, `.` or `..` segment (no leading, trailing or doubled `/`)".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> Self {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object as stored: its key, and the blob that holds its bytes (a new
/// blob per write, so a replacement never exposes half of either version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    pub namespace_id: NamespaceId,
    pub key: ObjectKey,
    pub blob_id: BlobId,
    pub size: u64,
    /// Hex SHA-256 of the bytes; also the object's ETag in Hood's API.
    pub sha256: String,
    /// Hex MD5 of the bytes: its ETag through S3 (`None` for an object
    /// stored before Hood kept it, whose S3 ETag is the SHA-256).
    pub md5: Option<String>,
    pub content_type: String,
    pub created_at: Timestamp,
}

/// The most parts a multipart upload may have (S3's limit).
pub const MAX_PARTS: u32 = 10_000;

/// The least a part other than the last may hold (S3's limit): 5 MiB.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// A multipart upload in progress: its parts are blobs of their own until
/// completion composes them, in order, into one object under `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    pub id: UploadId,
    pub namespace_id: NamespaceId,
    pub key: ObjectKey,
    pub content_type: String,
    pub created_at: Timestamp,
}

/// One uploaded part (the last upload of its number wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPart {
    pub upload_id: UploadId,
    pub number: u32,
    pub blob_id: BlobId,
    pub size: u64,
    /// Hex SHA-256 of the part's bytes; also its ETag in Hood's API.
    pub sha256: String,
    /// Hex MD5 of the part's bytes: its ETag through S3 (`None` for a part
    /// stored before Hood kept it).
    pub md5: Option<String>,
}

impl UploadPart {
    /// Whether `etag` (quoted or not) names this part: its SHA-256 (Hood's
    /// API) or its MD5 (S3).
    pub fn has_etag(&self, etag: &str) -> bool {
        let hex = etag_hex(etag);
        hex == self.sha256 || self.md5.as_deref() == Some(hex)
    }
}

/// A part number from a client: 1 ..= [`MAX_PARTS`].
pub fn part_number(raw: i64) -> Result<u32, FieldError> {
    u32::try_from(raw)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            FieldError::new(
                "partNumber",
                format!("a part number is between 1 and {MAX_PARTS}, not {raw}"),
            )
        })
}

/// Why a multipart upload cannot be completed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    #[error("the completion names no part")]
    NoParts,
    #[error("part numbers must ascend: {after} is followed by {number}")]
    Order { after: u32, number: u32 },
    #[error("part {number} was not uploaded, or its ETag differs from the uploaded part's")]
    InvalidPart { number: u32 },
    #[error("part {number} holds {size} bytes; every part but the last must hold at least {MIN_PART_BYTES}")]
    TooSmall { number: u32, size: u64 },
}

/// Normalizes an ETag as clients send it (quoted or not) to its hex.
fn etag_hex(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The parts to compose, in order, for a completion that names `requested`
/// (number, ETag) out of the `uploaded` parts: numbers ascend, each names
/// an uploaded part with its ETag (when one is given), and every part but
/// the last holds at least [`MIN_PART_BYTES`].
pub fn plan_completion(
    requested: &[(u32, Option<String>)],
    uploaded: &[UploadPart],
) -> Result<Vec<UploadPart>, CompletionError> {
    if requested.is_empty() {
        return Err(CompletionError::NoParts);
    }
    let mut plan: Vec<UploadPart> = Vec::with_capacity(requested.len());
    for (number, etag) in requested {
        if let Some(prev) = plan.last() {
            if *number <= prev.number {
                return Err(CompletionError::Order {
                    after: prev.number,
                    number: *number,
                });
            }
        }
        let part = uploaded
            .iter()
            .find(|p| p.number == *number)
            .filter(|p| etag.as_deref().is_none_or(|e| p.has_etag(e)))
            .ok_or(CompletionError::InvalidPart { number: *number })?;
        plan.push(part.clone());
    }
    if let Some(small) = plan[..plan.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_BYTES)
    {
        return Err(CompletionError::TooSmall {
            number: small.number,
            size: small.size,
        });
    }
    Ok(plan)
}

/// Where a blob's bytes live in the storage object store.
pub fn blob_path(namespace: NamespaceId, blob: BlobId) -> String {
    format!("namespaces/{namespace}/blobs/{blob}")
}

/// The smallest string above every string that starts with `prefix`, in
/// code point order (which is UTF-8 byte order): keys with the prefix are
/// exactly `prefix..upper`. `None` when no bound exists (an empty prefix,
/// or one made only of U+10FFFF).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Why a `Range` header cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a form this server reads: the header is ignored (RFC 9110
    /// §14.2: a server may ignore a Range it does not understand).
    #[error("unsupported range `{0}`")]
    Unsupported(String),
    /// A well-formed range outside the object: 416.
    #[error("range not satisfiable for an object of {size} bytes")]
    NotSatisfiable { size: u64 },
}

/// The bytes a single `Range: bytes=…` header asks of an object of `size`
/// bytes (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`; the end is clamped to
/// the object. Several ranges in one header are not served (`Unsupported`:
/// the whole object is sent instead, as the RFC allows).
pub fn byte_range(header: &str, size: u64) -> Result<Range<u64>, RangeError> {
    let unsupported = || RangeError::Unsupported(header.to_owned());
    let spec = header
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsupported)?
        .trim();
    if spec.contains(',') {
        return Err(unsupported());
    }
    let (first, last) = spec.split_once('-').ok_or_else(unsupported)?;
    let number = |s: &str| -> Result<u64, RangeError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unsupported());
        }
        s.parse::<u64>().map_err(|_| unsupported())
    };
    let not_satisfiable = RangeError::NotSatisfiable { size };
    if first.is_empty() {
        // A suffix: the last n bytes.
        let n = number(last)?;
        if n == 0 || size == 0 {
            return Err(not_satisfiable);
        }
        return Ok(size.saturating_sub(n)..size);
    }
    let start = number(first)?;
    let end = if last.is_empty() {
        size
    } else {
        let last = number(last)?;
        if last < start {
            return Err(unsupported());
        }
        last.saturating_add(1).min(size)
    };
    if start >= size {
        return Err(not_satisfiable);
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part(number: u32, size: u64) -> UploadPart {
        UploadPart {
            upload_id: UploadId::from_uuid(uuid::Uuid::nil()),
            number,
            blob_id: BlobId::from_uuid(uuid::Uuid::from_u128(u128::from(number))),
            size,
            sha256: format!("{number:064x}"),
            md5: Some(format!("{number:032x}")),
        }
    }

    #[test]
    fn completion_takes_the_named_parts_in_order() {
        let uploaded = [
            part(3, 7),
            part(1, MIN_PART_BYTES),
            part(2, MIN_PART_BYTES + 1),
        ];
        let plan = plan_completion(
            &[(1, Some(format!("\"{:064x}\"", 1))), (3, None)],
            &uploaded,
        )
        .unwrap();
        assert_eq!(plan.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 3]);
        // S3 clients send back the MD5 ETags S3 gave them.
        let plan = plan_completion(
            &[
                (1, Some(format!("\"{:032x}\"", 1))),
                (2, Some(format!("{:032x}", 2))),
            ],
            &uploaded,
        )
        .unwrap();
        assert_eq!(plan.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            plan_completion(&[(1, Some(format!("{:032x}", 2)))], &uploaded),
            Err(CompletionError::InvalidPart { number: 1 }),
            "another part's MD5"
        );
    }

    #[test]
    fn completion_refuses_what_s3_refuses() {
        let uploaded = [part(1, MIN_PART_BYTES), part(2, 10), part(3, 10)];
        assert_eq!(
            plan_completion(&[], &uploaded),
            Err(CompletionError::NoParts)
        );
        assert_eq!(
            plan_completion(&[(2, None), (1, None)], &uploaded),
            Err(CompletionError::Order {
                after: 2,
                number: 1
            })
        );
        assert_eq!(
            plan_completion(&[(1, None), (4, None)], &uploaded),
            Err(CompletionError::InvalidPart { number: 4 })
        );
        assert_eq!(
            plan_completion(&[(1, Some("\"beef\"".into()))], &uploaded),
            Err(CompletionError::InvalidPart { number: 1 })
        );
        assert_eq!(
            plan_completion(&[(1, None), (2, None), (3, None)], &uploaded),
            Err(CompletionError::TooSmall {
                number: 2,
                size: 10
            })
        );
        // A small last part is fine.
        assert!(plan_completion(&[(1, None), (2, None)], &uploaded).is_ok());
    }

    #[test]
    fn part_numbers_are_s3s() {
        assert_eq!(part_number(1), Ok(1));
        assert_eq!(part_number(10_000), Ok(10_000));
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert!(part_number(-1).is_err());
    }

    #[test]
    fn namespace_names_follow_dns_label_rules() {
        for ok in ["logs", "a1b", "build-artifacts-2026", "000"] {
            assert!(NamespaceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Logs",
            "-logs",
            "logs-",
            "my.logs",
            "my_logs",
            &"a".repeat(64),
        ] {
            assert!(NamespaceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_refuse_empty_dot_segments_and_control_characters() {
        for ok in ["a", "dir/file.txt", "a b/ü.json", ".hidden/x", "x..y"] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "trailing/",
            "a//b",
            "../etc/passwd",
            "a/./b",
            "new\nline",
            &"k".repeat(MAX_KEY_BYTES + 1),
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_write_may_end_exactly_at_the_quota_and_not_one_byte_beyond() {
        let quota = Quota::new(100, 2).unwrap();
        let used = Usage {
            bytes: 60,
            objects: 1,
        };
        assert_eq!(
            used.after_write(quota, None, 40),
            Ok(Usage {
                bytes: 100,
                objects: 2
            })
        );
        assert_eq!(
            used.after_write(quota, None, 41),
            Err(QuotaExceeded::Bytes {
                limit: 100,
                used: 60,
                needed: 41
            })
        );
        let full = Usage {
            bytes: 10,
            objects: 2,
        };
        assert_eq!(
            full.after_write(quota, None, 1),
            Err(QuotaExceeded::Objects { limit: 2 })
        );
        // Replacing a key frees its old bytes and keeps the count.
        assert_eq!(
            full.after_write(quota, Some(10), 100),
            Ok(Usage {
                bytes: 100,
                objects: 2
            })
        );
        assert_eq!(used.headroom(quota, None), 40);
        assert_eq!(used.headroom(quota, Some(60)), 100);
    }

    proptest! {
        /// Whatever sequence of writes and deletes is admitted, usage never
        /// exceeds the quota and always equals what the keys hold.
        #[test]
        fn admitted_writes_never_exceed_the_quota(
            ops in proptest::collection::vec((0u8..6, 0u64..50, any::<bool>()), 1..60),
            max_bytes in 1u64..200,
            max_objects in 1u64..6,
        ) {
            let quota = Quota::new(max_bytes, max_objects).unwrap();
            let mut usage = Usage::default();
            let mut keys = std::collections::BTreeMap::<u8, u64>::new();
            for (key, size, delete) in ops {
                if delete {
                    if let Some(old) = keys.remove(&key) {
                        usage = usage.after_delete(old);
                    }
                    continue;
                }
                if let Ok(next) = usage.after_write(quota, keys.get(&key).copied(), size) {
                    usage = next;
                    keys.insert(key, size);
                }
                prop_assert!(usage.bytes <= quota.max_bytes);
                prop_assert!(usage.objects <= quota.max_objects);
                prop_assert_eq!(usage.bytes, keys.values().sum::<u64>());
                prop_assert_eq!(usage.objects, keys.len() as u64);
            }
        }
    }

    #[test]
    fn the_prefix_bound_admits_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("logs/"), Some("logs0".into()));
        assert_eq!(prefix_upper_bound("a\u{D7FF}"), Some("a\u{E000}".into()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }

    proptest! {
        #[test]
        fn keys_under_a_prefix_are_exactly_the_range(prefix in "[a-c/\u{10FFFF}]{0,4}", key in "[a-c/\u{10FFFF}]{0,6}") {
            let inside = key.as_str() >= prefix.as_str()
                && prefix_upper_bound(&prefix).is_none_or(|upper| key < upper);
            prop_assert_eq!(inside, key.starts_with(&prefix));
        }
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(byte_range("bytes=0-9", 100), Ok(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Ok(90..100));
        assert_eq!(byte_range("bytes=95-200", 100), Ok(95..100));
        assert_eq!(byte_range("bytes=-10", 100), Ok(90..100));
        assert_eq!(byte_range("bytes=-500", 100), Ok(0..100));
        assert_eq!(
            byte_range("bytes=100-", 100),
            Err(RangeError::NotSatisfiable { size: 100 })
        );
        assert_eq!(
            byte_range("bytes=-0", 100),
            Err(RangeError::NotSatisfiable { size: 100 })
        );
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=x-",
            "bytes=-",
        ] {
            assert!(
                matches!(byte_range(ignored, 100), Err(RangeError::Unsupported(_))),
                "{ignored}"
            );
        }
    }
}
