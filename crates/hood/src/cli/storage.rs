//! `hood storage …`: namespaces (`ns create|list|show|delete`), their
//! objects (`put`, `get`, `ls`, `rm`, `presign`) and multipart uploads in
//! progress (`uploads`, `abort`).

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{json, list, show, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hood_api::routes::storage::{
    key_path, CreateNamespaceRequest, NamespaceView, ObjectPageView, ObjectView, ObjectWrittenView,
    PresignRequest, PresignedView,
};
use hood_api::routes::storage_uploads::{
    CompleteUploadRequest, CompletedPartRequest, CreateUploadRequest, UploadPageView,
    UploadPartView, UploadSummaryView, UploadView,
};
use hood_api::views::Page;
use reqwest::Method;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum StorageCmd {
    /// Namespaces (buckets) of the organization.
    #[command(subcommand)]
    Ns(NsCmd),
    /// Uploads a file as an object (streamed; replaces the key's object).
    ///
    /// A file larger than one part goes as a multipart upload, resumable:
    /// its id is printed first, and `--resume ID` after an interruption
    /// sends only the parts the server does not hold.
    Put {
        namespace: String,
        key: String,
        file: PathBuf,
        /// Part size of multipart uploads, in MiB (at least 5).
        #[arg(long, default_value_t = 64)]
        part_mib: u64,
        /// Continue this multipart upload of the same file.
        #[arg(long, value_name = "UPLOAD_ID")]
        resume: Option<String>,
    },
    /// Downloads an object into FILE (standard output without it).
    Get {
        namespace: String,
        key: String,
        file: Option<PathBuf>,
        /// One byte range, e.g. `0-1023`, `1024-` or `-512` (the last 512).
        #[arg(long, allow_hyphen_values = true)]
        range: Option<String>,
    },
    /// Lists objects in key order.
    Ls {
        namespace: String,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// List one folder level: keys that go on past this (e.g. `/`)
        /// after the prefix are shown once as `PRE {common prefix}`.
        #[arg(long)]
        delimiter: Option<String>,
        /// At most this many (every page when absent).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Deletes an object.
    Rm { namespace: String, key: String },
    /// A URL that lets anyone holding it GET (or PUT) one object until it
    /// expires.
    Presign {
        namespace: String,
        key: String,
        /// get or put.
        #[arg(long, default_value = "get")]
        method: String,
        /// Seconds the URL works (at most 604800).
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
    },
    /// Multipart uploads in progress (neither completed nor aborted), by
    /// key: the id `put --resume` takes.
    Uploads {
        namespace: String,
        /// Only uploads of keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Aborts a multipart upload in progress; the parts it held go.
    Abort {
        namespace: String,
        upload_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NsCmd {
    /// Creates a namespace.
    Create {
        name: String,
        /// Anyone may read its objects (writing still needs the org).
        #[arg(long)]
        public: bool,
        /// The byte quota (default: the server's).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// The object quota (default: the server's).
        #[arg(long)]
        max_objects: Option<u64>,
    },
    List,
    Show {
        name: String,
    },
    /// Deletes a namespace and every object in it (in the background).
    Delete {
        name: String,
    },
}

fn ns_path(name: &str) -> String {
    format!("/api/v1/storage/namespaces/{}", key_path(name))
}

fn object_path(namespace: &str, key: &str) -> String {
    format!("{}/objects/{}", ns_path(namespace), key_path(key))
}

/// A multipart upload of `file` (new, or `resume`d: parts the server
/// already holds with the same SHA-256 are not sent again), completed.
async fn put_in_parts(
    client: &mut Client,
    namespace: &str,
    key: &str,
    file: &std::path::Path,
    part_size: u64,
    resume: Option<String>,
) -> Result<ObjectWrittenView> {
    use sha2::Digest as _;
    use std::io::{Read as _, Seek as _};
    let uploads = format!("{}/uploads", ns_path(namespace));
    let upload: UploadView = match &resume {
        Some(id) => {
            let upload: UploadView = client.get(&format!("{uploads}/{id}")).await?;
            if upload.key != key {
                bail!("upload {id} is of `{}`, not `{key}`", upload.key);
            }
            upload
        }
        None => {
            client
                .post(
                    &uploads,
                    &CreateUploadRequest {
                        key: key.to_owned(),
                        content_type: None,
                    },
                )
                .await?
        }
    };
    eprintln!(
        "multipart upload {} (if interrupted, run the same command with --resume {})",
        upload.id, upload.id
    );
    let mut reader =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = reader.metadata()?.len();
    let count = size.div_ceil(part_size).max(1);
    let mut parts = Vec::new();
    let mut sent = 0u64;
    for number in 1..=count {
        let number = u32::try_from(number).context("more than 10000 parts: raise --part-mib")?;
        let offset = u64::from(number - 1) * part_size;
        let len = part_size.min(size - offset.min(size));
        reader.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; usize::try_from(len)?];
        reader
            .read_exact(&mut buf)
            .with_context(|| format!("reading {}", file.display()))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&buf));
        let held = upload
            .parts
            .iter()
            .any(|p| p.number == number && p.sha256 == sha256 && p.size == len);
        if !held {
            let part: UploadPartView = client
                .put_bytes(
                    &format!("{uploads}/{}/parts/{number}", upload.id),
                    bytes::Bytes::from(buf),
                )
                .await?;
            if part.sha256 != sha256 {
                bail!(
                    "part {number} arrived altered (SHA-256 {} ≠ {sha256})",
                    part.sha256
                );
            }
            sent += len;
        }
        parts.push(CompletedPartRequest {
            number,
            sha256: Some(sha256),
        });
    }
    eprintln!(
        "{count} parts, {sent} of {size} bytes sent{}",
        if sent < size {
            " (the rest was already there)"
        } else {
            ""
        }
    );
    client
        .post(
            &format!("{uploads}/{}/complete", upload.id),
            &CompleteUploadRequest { parts },
        )
        .await
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: StorageCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        StorageCmd::Ns(NsCmd::Create {
            name,
            public,
            max_bytes,
            max_objects,
        }) => {
            let body = CreateNamespaceRequest {
                name,
                visibility: Some(if public { "public" } else { "private" }.into()),
                max_bytes,
                max_objects,
            };
            let ns: NamespaceView = client.post("/api/v1/storage/namespaces", &body).await?;
            show(format, &ns, columns::NAMESPACE)
        }
        StorageCmd::Ns(NsCmd::List) => {
            let page: Page<NamespaceView> = client.get("/api/v1/storage/namespaces").await?;
            list(format, &page, columns::NAMESPACE)
        }
        StorageCmd::Ns(NsCmd::Show { name }) => {
            let ns: NamespaceView = client.get(&ns_path(&name)).await?;
            show(format, &ns, columns::NAMESPACE)
        }
        StorageCmd::Ns(NsCmd::Delete { name }) => {
            let ns: NamespaceView = client
                .call(Method::DELETE, &ns_path(&name), None::<&()>)
                .await?;
            show(format, &ns, columns::NAMESPACE)
        }
        StorageCmd::Put {
            namespace,
            key,
            file,
            part_mib,
            resume,
        } => {
            if part_mib < 5 {
                bail!("--part-mib must be at least 5 (S3's smallest part)");
            }
            let size = std::fs::metadata(&file)
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            let part_size = part_mib * 1024 * 1024;
            let written: ObjectWrittenView = if size > part_size || resume.is_some() {
                put_in_parts(&mut client, &namespace, &key, &file, part_size, resume).await?
            } else {
                client
                    .put_file(&object_path(&namespace, &key), &file, &[])
                    .await?
            };
            show(format, &written.object, columns::OBJECT)
        }
        StorageCmd::Get {
            namespace,
            key,
            file,
            range,
        } => {
            let range = range.map(|r| format!("bytes={r}"));
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", r.as_str())).collect();
            let path = object_path(&namespace, &key);
            match file {
                Some(file) => {
                    // Into a temporary file beside the target, renamed when
                    // whole: a failed download never leaves half a file.
                    let partial = file.with_extension("partial");
                    let mut out = std::io::BufWriter::new(
                        std::fs::File::create(&partial)
                            .with_context(|| format!("creating {}", partial.display()))?,
                    );
                    let result = client.download(&path, &headers, &mut out).await;
                    drop(out);
                    match result {
                        Ok(bytes) => {
                            tokio::fs::rename(&partial, &file)
                                .await
                                .with_context(|| format!("writing {}", file.display()))?;
                            eprintln!("{bytes} bytes written to {}", file.display());
                            Ok(())
                        }
                        Err(e) => {
                            let _ = tokio::fs::remove_file(&partial).await;
                            Err(e)
                        }
                    }
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    client.download(&path, &headers, &mut out).await?;
                    Ok(())
                }
            }
        }
        StorageCmd::Ls {
            namespace,
            prefix,
            delimiter,
            limit,
        } => {
            let mut items: Vec<ObjectView> = Vec::new();
            let mut prefixes: Vec<String> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(p) = &prefix {
                    query.append_pair("prefix", p);
                }
                if let Some(d) = &delimiter {
                    query.append_pair("delimiter", d);
                }
                if let Some(a) = &after {
                    query.append_pair("after", a);
                }
                let want = limit.map_or(1000, |l| {
                    l.saturating_sub(
                        u32::try_from(items.len() + prefixes.len()).unwrap_or(u32::MAX),
                    )
                    .clamp(1, 1000)
                });
                query.append_pair("limit", &want.to_string());
                let page: ObjectPageView = client
                    .get(&format!(
                        "{}/objects?{}",
                        ns_path(&namespace),
                        query.finish()
                    ))
                    .await?;
                items.extend(page.items);
                prefixes.extend(page.prefixes);
                let done = limit.is_some_and(|l| items.len() + prefixes.len() >= l as usize);
                match page.next_after {
                    Some(next) if !done => after = Some(next),
                    _ => break,
                }
            }
            if delimiter.is_none() {
                return list(format, &Page { items }, columns::OBJECT);
            }
            match format {
                Format::Json => json(&ObjectPageView {
                    items,
                    prefixes,
                    next_after: None,
                }),
                Format::Table => {
                    for p in &prefixes {
                        println!("PRE {p}");
                    }
                    list(format, &Page { items }, columns::OBJECT)
                }
            }
        }
        StorageCmd::Uploads { namespace, prefix } => {
            let mut items: Vec<UploadSummaryView> = Vec::new();
            let mut after: Option<(String, uuid::Uuid)> = None;
            loop {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(p) = &prefix {
                    query.append_pair("prefix", p);
                }
                if let Some((key, upload)) = &after {
                    query.append_pair("after_key", key);
                    query.append_pair("after_upload", &upload.to_string());
                }
                query.append_pair("limit", "1000");
                let page: UploadPageView = client
                    .get(&format!(
                        "{}/uploads?{}",
                        ns_path(&namespace),
                        query.finish()
                    ))
                    .await?;
                items.extend(page.items);
                match (page.next_after_key, page.next_after_upload) {
                    (Some(key), Some(upload)) => after = Some((key, upload)),
                    _ => break,
                }
            }
            list(format, &Page { items }, columns::UPLOAD)
        }
        StorageCmd::Abort {
            namespace,
            upload_id,
        } => {
            let id: uuid::Uuid = upload_id
                .parse()
                .with_context(|| format!("`{upload_id}` is not an upload id (a UUID)"))?;
            client
                .delete(&format!("{}/uploads/{id}", ns_path(&namespace)))
                .await?;
            println!("aborted upload {id} in {namespace}");
            Ok(())
        }
        StorageCmd::Rm { namespace, key } => {
            client.delete(&object_path(&namespace, &key)).await?;
            println!("deleted {namespace}/{key}");
            Ok(())
        }
        StorageCmd::Presign {
            namespace,
            key,
            method,
            expires_in,
        } => {
            if !matches!(method.to_ascii_lowercase().as_str(), "get" | "put") {
                bail!("--method must be get or put, not `{method}`");
            }
            let signed: PresignedView = client
                .post(
                    &format!("{}/presign/{}", ns_path(&namespace), key_path(&key)),
                    &PresignRequest {
                        method: Some(method.to_ascii_uppercase()),
                        expires_in_seconds: Some(expires_in),
                    },
                )
                .await?;
            match format {
                Format::Json => super::output::json(&signed),
                Format::Table => {
                    println!("{}{}", client.server, signed.url);
                    eprintln!("{} until {}", signed.method, signed.expires_at);
                    Ok(())
                }
            }
        }
    }
}
