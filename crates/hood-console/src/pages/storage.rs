//! Storage: the organization's namespaces (create, delete) and a browser
//! of one namespace's objects, a folder level at a time (upload, download,
//! presigned URLs, delete). Bytes never stop in the console: uploads and
//! downloads stream through to the API's object routes.

use super::{back_with_error, q, segment, FormData};
use crate::layout::{
    action_button, byte_size, csrf_input, empty_row, page, sortable_head, state_badge,
    table_filter, when, Nav,
};
use crate::session::{public_base, redirect_with};
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::storage::{
    key_path, NamespaceView, ObjectPageView, PresignedView, OBJECT_CONTENT_SECURITY_POLICY,
};
use hood_api::views::Page;
use maud::{html, Markup};
use serde::Deserialize;

/// Objects and folders on one page of the browser.
const PAGE_SIZE: u32 = 100;

/// The API's path of a namespace.
fn ns_api(name: &str) -> String {
    format!("/api/v1/storage/namespaces/{name}")
}

/// The browser's page of a namespace at a folder (`prefix`).
fn browse_href(name: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("/console/storage/{name}")
    } else {
        format!("/console/storage/{name}?prefix={}", q(prefix))
    }
}

/// The folder a key lives in (`a/b/c.txt` → `a/b/`), for going back to it.
fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |at| &key[..=at])
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let namespaces = match console
        .backend()
        .get::<Page<NamespaceView>>(&session.caller, "/api/v1/storage/namespaces")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let operate = session.can("operate");
    let content = html! {
        p.muted {
            "Namespaces hold your organization's objects. Every S3 tool reaches them as buckets "
            "with an access key of a service account; public namespaces are readable by anyone."
        }
        (table_filter("namespaces", "Filter namespaces"))
        table #namespaces.data data-sortable {
            (sortable_head(&["Name", "Visibility", "State", "Stored", "Objects", "Created", ""]))
            tbody {
                @for n in &namespaces {
                    tr data-namespace=(n.name) {
                        td { a href=(browse_href(&n.name, "")) { (n.name) } }
                        td { (n.visibility) }
                        td { (state_badge(&n.state)) }
                        td.num data-testid="ns-bytes" {
                            (byte_size(n.usage.bytes)) " of " (byte_size(n.quota.max_bytes))
                        }
                        td.num data-testid="ns-objects" { (n.usage.objects) " of " (n.quota.max_objects) }
                        td { (when(&n.created_at)) }
                        td {
                            @if operate && n.state == "active" {
                                (action_button(
                                    &session,
                                    &format!("/console/storage/{}/delete", n.name),
                                    "Delete",
                                    Some(&format!("Delete namespace {} and every object in it?", n.name)),
                                    true,
                                ))
                            }
                        }
                    }
                }
                @if namespaces.is_empty() { (empty_row(7, "No namespaces yet.")) }
            }
        }
        @if operate {
            section.card #create {
                h2 { "Create a namespace" }
                form method="post" action="/console/storage" data-busy="Creating…" {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="ns-name" { "Name" }
                            input #ns-name name="name" required minlength="3" maxlength="63"
                                pattern="[a-z0-9][a-z0-9-]*[a-z0-9]" placeholder="logs";
                        }
                        div {
                            label for="ns-visibility" { "Visibility" }
                            select #ns-visibility name="visibility" {
                                option value="private" { "private" }
                                option value="public" { "public (anonymous read)" }
                            }
                        }
                        div {
                            label for="ns-max-mib" { "Byte quota (MiB, blank: the server's)" }
                            input #ns-max-mib name="max_mib" type="number" min="1";
                        }
                        div {
                            label for="ns-max-objects" { "Object quota (blank: the server's)" }
                            input #ns-max-objects name="max_objects" type="number" min="1";
                        }
                    }
                    button.primary type="submit" { "Create namespace" }
                }
            }
        }
    };
    page(&session, Nav::Storage, "Storage", None, content)
}

/// A whole number from a form field; `None` when blank.
fn whole(form: &FormData, name: &str, label: &str) -> Result<Option<u64>, String> {
    form.get(name)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{label} must be a whole number above 0."))
        })
        .transpose()
}

/// The API's request for a namespace, from the create form.
fn create_request(form: &FormData) -> Result<serde_json::Value, String> {
    let mut body = serde_json::json!({
        "name": form.get("name").unwrap_or_default(),
        "visibility": form.get("visibility").unwrap_or_else(|| "private".into()),
    });
    if let Some(mib) = whole(form, "max_mib", "The byte quota")? {
        let bytes = mib
            .checked_mul(1024 * 1024)
            .ok_or_else(|| "The byte quota is too large.".to_owned())?;
        body["max_bytes"] = bytes.into();
    }
    if let Some(n) = whole(form, "max_objects", "The object quota")? {
        body["max_objects"] = n.into();
    }
    Ok(body)
}

pub(crate) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let body = match create_request(&form) {
        Ok(b) => b,
        Err(message) => {
            return redirect_with(
                &console,
                &headers,
                "/console/storage#create",
                Flash {
                    message,
                    error: true,
                    ..Flash::default()
                },
            )
        }
    };
    match console
        .backend()
        .call::<_, NamespaceView>(
            &session.caller,
            Method::POST,
            "/api/v1/storage/namespaces",
            &body,
        )
        .await
    {
        Ok(n) => redirect_with(
            &console,
            &headers,
            &browse_href(&n.name, ""),
            Flash::info(format!("Namespace {} created.", n.name)),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/storage#create", &f),
    }
}

pub(crate) async fn delete(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let name = match segment(&name) {
        Ok(n) => n.to_owned(),
        Err(r) => return r.into_response(),
    };
    super::act_and_return(
        &console,
        &session,
        &headers,
        (Method::DELETE, &ns_api(&name)),
        "/console/storage",
        &format!("Namespace {name} is being deleted with its objects."),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct BrowseQuery {
    /// The folder shown (`a/b/`); the namespace's top when absent.
    prefix: Option<String>,
    /// Where the page starts (the previous page's last entry).
    after: Option<String>,
}

/// The links from the namespace's top down to the folder shown.
fn breadcrumbs(name: &str, prefix: &str) -> Markup {
    let mut crumbs = Vec::new();
    let mut so_far = String::new();
    for part in prefix.split_terminator('/') {
        so_far.push_str(part);
        so_far.push('/');
        crumbs.push((part, browse_href(name, &so_far)));
    }
    html! {
        nav.crumbs aria-label="Folder" data-testid="crumbs" {
            a href=(browse_href(name, "")) { (name) }
            @for (part, href) in &crumbs {
                " / "
                a href=(href) { (part) }
            }
        }
    }
}

pub(crate) async fn browse(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Response {
    let name = match segment(&name) {
        Ok(n) => n.to_owned(),
        Err(r) => return r.into_response(),
    };
    let prefix = query.prefix.unwrap_or_default();
    let namespace = match console
        .backend()
        .get::<NamespaceView>(&session.caller, &ns_api(&name))
        .await
    {
        Ok(n) => n,
        Err(f) => return f.into_response(),
    };
    let mut listing = format!(
        "{}/objects?delimiter=%2F&limit={PAGE_SIZE}&prefix={}",
        ns_api(&name),
        q(&prefix)
    );
    if let Some(after) = &query.after {
        listing.push_str(&format!("&after={}", q(after)));
    }
    let objects = match console
        .backend()
        .get::<ObjectPageView>(&session.caller, &listing)
        .await
    {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    let operate = session.can("operate");
    let empty = objects.items.is_empty() && objects.prefixes.is_empty();
    let content = html! {
        dl.facts {
            div { dt { "Visibility" } dd { (namespace.visibility) } }
            div { dt { "State" } dd { (state_badge(&namespace.state)) } }
            div { dt { "Stored" } dd data-testid="usage-bytes" { (byte_size(namespace.usage.bytes)) " of " (byte_size(namespace.quota.max_bytes)) } }
            div { dt { "Objects" } dd data-testid="usage-objects" { (namespace.usage.objects) " of " (namespace.quota.max_objects) } }
        }
        (breadcrumbs(&name, &prefix))
        table #objects.data data-sortable {
            (sortable_head(&["Name", "Size", "Type", "Stored", ""]))
            tbody {
                @for folder in &objects.prefixes {
                    tr data-folder=(folder) {
                        td { a href=(browse_href(&name, folder)) { (folder.strip_prefix(prefix.as_str()).unwrap_or(folder)) } }
                        td.num { "—" }
                        td { "folder" }
                        td {}
                        td {}
                    }
                }
                @for o in &objects.items {
                    tr data-key=(o.key) {
                        td {
                            a href=(format!("/console/storage/{name}/objects/{}", key_path(&o.key))) download {
                                (o.key.strip_prefix(prefix.as_str()).unwrap_or(&o.key))
                            }
                        }
                        td.num { (byte_size(o.size)) }
                        td { code.small { (o.content_type) } }
                        td { (when(&o.created_at)) }
                        td.row-actions {
                            form.inline method="post" action=(format!("/console/storage/{name}/presign")) {
                                (csrf_input(&session))
                                input type="hidden" name="key" value=(o.key);
                                input type="hidden" name="method" value="GET";
                                button type="submit" { "Presigned URL" }
                            }
                            @if operate {
                                form.inline method="post" action=(format!("/console/storage/{name}/delete-object"))
                                    data-confirm=(format!("Delete {}?", o.key)) {
                                    (csrf_input(&session))
                                    input type="hidden" name="key" value=(o.key);
                                    button.danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
                @if empty { (empty_row(5, "Nothing here yet.")) }
            }
        }
        @if let Some(next) = &objects.next_after {
            p { a.button href=(format!("{}{}after={}", browse_href(&name, &prefix), if prefix.is_empty() { "?" } else { "&" }, q(next))) rel="next" { "Next page" } }
        }
        @if operate && namespace.state == "active" {
            section.card #upload-card {
                h2 { "Upload" }
                noscript { p.muted { "Uploading from the browser needs JavaScript; " code { "hood storage put" } " and every S3 tool work without it." } }
                form #upload hidden data-upload=(name) data-prefix=(prefix) {
                    div.fields {
                        div {
                            label for="upload-files" { "Files (stored under " code { "/" (prefix) } ")" }
                            input #upload-files type="file" name="files" multiple required;
                        }
                    }
                    progress #upload-progress max="100" value="0" hidden {}
                    p #upload-status.muted role="status" aria-live="polite" {}
                    button.primary type="submit" { "Upload" }
                }
            }
            section.card #presign-put {
                h2 { "A URL to upload one object" }
                form method="post" action=(format!("/console/storage/{name}/presign")) {
                    (csrf_input(&session))
                    input type="hidden" name="method" value="PUT";
                    div.fields {
                        div {
                            label for="presign-key" { "Key" }
                            input #presign-key name="key" required value=(prefix);
                        }
                        div {
                            label for="presign-expires" { "Works for" }
                            select #presign-expires name="expires_in_seconds" {
                                option value="900" { "15 minutes" }
                                option value="3600" selected { "1 hour" }
                                option value="86400" { "1 day" }
                                option value="604800" { "7 days" }
                            }
                        }
                    }
                    button type="submit" { "Presign a PUT" }
                }
            }
        }
    };
    page(
        &session,
        Nav::Storage,
        &format!("Storage · {name}"),
        None,
        content,
    )
}

/// The key a form names, and where the browser goes back to afterwards.
fn form_key(form: &FormData, name: &str) -> Result<(String, String), String> {
    let key = form
        .0
        .iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| "Name the object's key.".to_owned())?;
    let back = browse_href(name, folder_of(&key));
    Ok((key, back))
}

/// Back to the namespace with what was wrong with the form.
fn form_refused(console: &Console, headers: &HeaderMap, name: &str, message: String) -> Response {
    redirect_with(
        console,
        headers,
        &browse_href(name, ""),
        Flash {
            message,
            error: true,
            ..Flash::default()
        },
    )
}

pub(crate) async fn presign(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let name = match segment(&name) {
        Ok(n) => n.to_owned(),
        Err(r) => return r.into_response(),
    };
    let (key, back) = match form_key(&form, &name) {
        Ok(k) => k,
        Err(message) => return form_refused(&console, &headers, &name, message),
    };
    let method = form.get("method").unwrap_or_else(|| "GET".into());
    let expires = form
        .get("expires_in_seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(3600);
    let body = serde_json::json!({ "method": method, "expires_in_seconds": expires });
    match console
        .backend()
        .call::<_, PresignedView>(
            &session.caller,
            Method::POST,
            &format!("{}/presign/{}", ns_api(&name), key_path(&key)),
            &body,
        )
        .await
    {
        Ok(signed) => redirect_with(
            &console,
            &headers,
            &back,
            Flash {
                message: format!(
                    "Anyone holding this URL may {} {key} until {}.",
                    signed.method, signed.expires_at
                ),
                secret: Some(format!("{}{}", public_base(&console, &headers), signed.url)),
                secret_label: Some(format!("Presigned {} URL", signed.method)),
                ..Flash::default()
            },
        ),
        Err(f) => back_with_error(&console, &headers, &back, &f),
    }
}

pub(crate) async fn delete_object(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let name = match segment(&name) {
        Ok(n) => n.to_owned(),
        Err(r) => return r.into_response(),
    };
    let (key, back) = match form_key(&form, &name) {
        Ok(k) => k,
        Err(message) => return form_refused(&console, &headers, &name, message),
    };
    super::act_and_return(
        &console,
        &session,
        &headers,
        (
            Method::DELETE,
            &format!("{}/objects/{}", ns_api(&name), key_path(&key)),
        ),
        &back,
        &format!("Deleted {key}."),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ObjectPath {
    name: String,
    key: String,
}

/// `GET`: the object's bytes as a download (a `Range` passes through);
/// `PUT`: an upload from the page's script, streamed to the API.
pub(crate) async fn object(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(path): Path<ObjectPath>,
    request: Request,
) -> Response {
    let name = match segment(&path.name) {
        Ok(n) => n.to_owned(),
        Err(r) => return r.into_response(),
    };
    let api_path = format!("{}/objects/{}", ns_api(&name), key_path(&path.key));
    let download = request.method() == Method::GET || request.method() == Method::HEAD;
    let mut response = match console
        .backend()
        .forward(&session.caller, &api_path, request)
        .await
    {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    if download && response.status().is_success() {
        let file = path.key.rsplit('/').next().unwrap_or("download");
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_DISPOSITION, attachment(file));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(OBJECT_CONTENT_SECURITY_POLICY),
        );
    }
    response
}

/// `attachment` with the file's name (RFC 6266: an ASCII fallback and the
/// exact name percent-encoded as UTF-8).
fn attachment(file: &str) -> HeaderValue {
    let ascii: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact: String = file
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_their_links() {
        assert_eq!(folder_of("a/b/c.txt"), "a/b/");
        assert_eq!(folder_of("top.txt"), "");
        assert_eq!(browse_href("logs", ""), "/console/storage/logs");
        assert_eq!(
            browse_href("logs", "a b/"),
            "/console/storage/logs?prefix=a+b%2F"
        );
    }

    #[test]
    fn a_download_is_named_safely() {
        assert_eq!(
            attachment("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            attachment("naïve \"x\".txt"),
            "attachment; filename=\"na_ve__x_.txt\"; filename*=UTF-8''na%C3%AFve%20%22x%22.txt"
        );
    }

    #[test]
    fn the_create_form_becomes_the_apis_request() {
        let form = FormData(vec![
            ("name".into(), "logs".into()),
            ("visibility".into(), "public".into()),
            ("max_mib".into(), "2".into()),
            ("max_objects".into(), "".into()),
        ]);
        assert_eq!(
            create_request(&form).unwrap(),
            serde_json::json!({"name": "logs", "visibility": "public", "max_bytes": 2_097_152})
        );
        let bad = FormData(vec![("max_objects".into(), "-1".into())]);
        assert!(create_request(&bad).is_err());
    }
}
