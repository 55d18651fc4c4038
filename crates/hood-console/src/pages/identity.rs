//! Organizations, their users, and API keys.

use super::{back_with_error, segment, FormData};
use crate::layout::{
    action_button, csrf_input, empty_row, optional_when, page, sortable_head, table_filter, when,
    Nav,
};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::views::{ApiKeyView, CreatedApiKey, OrgView, Page, UserView};
use maud::{html, Markup};

const ROLES: [&str; 4] = ["viewer", "operator", "billing", "admin"];
const SCOPES: [&str; 6] = [
    "read",
    "operate",
    "read_billing",
    "manage_billing",
    "manage_users",
    "manage_keys",
];

fn role_select(id: &str, selected: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in ROLES { option value=(r) selected[r == selected] { (r) } }
        }
    }
}

pub(crate) async fn orgs(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let orgs = match console
        .backend()
        .get::<Page<OrgView>>(&session.caller, "/api/v1/orgs")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        (table_filter("orgs", "Filter organizations"))
        table #orgs.data data-sortable {
            (sortable_head(&["Name", "Slug", "Created"]))
            tbody {
                @for o in &orgs {
                    tr {
                        td { a href=(format!("/console/orgs/{}", o.id)) data-testid="org-name" { (o.name) } }
                        td { code { (o.slug) } }
                        td { (when(&o.created_at)) }
                    }
                }
                @if orgs.is_empty() { (empty_row(3, "No organizations.")) }
            }
        }
        @if session.platform_admin() {
            section.card #create {
                h2 { "Create an organization" }
                form method="post" action="/console/orgs" data-busy="Creating…" {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="org-name" { "Name" }
                            input #org-name name="name" required maxlength="200";
                        }
                        div {
                            label for="org-slug" { "Slug" }
                            input #org-slug name="slug" required pattern="[a-z0-9][a-z0-9-]{0,62}" aria-describedby="org-slug-help";
                            small #org-slug-help { "Lower-case letters, digits and dashes; unique." }
                        }
                    }
                    button.primary type="submit" { "Create organization" }
                }
            }
        }
    };
    page(&session, Nav::Orgs, "Organizations", None, content)
}

pub(crate) async fn create_org(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let body = serde_json::json!({
        "name": form.get("name").unwrap_or_default(),
        "slug": form.get("slug").unwrap_or_default(),
    });
    match console
        .backend()
        .call::<_, OrgView>(&session.caller, Method::POST, "/api/v1/orgs", &body)
        .await
    {
        Ok(org) => redirect_with(
            &console,
            &headers,
            &format!("/console/orgs/{}", org.id),
            Flash::info(format!(
                "Organization {} created: add its first user below.",
                org.name
            )),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/orgs#create", &f),
    }
}

pub(crate) async fn org(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let api = console.backend();
    let org = match api
        .get::<OrgView>(&session.caller, &format!("/api/v1/orgs/{id}"))
        .await
    {
        Ok(o) => o,
        Err(f) => return f.into_response(),
    };
    let users = api
        .get::<Page<UserView>>(&session.caller, &format!("/api/v1/orgs/{id}/users"))
        .await
        .map(|p| p.items);
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "Slug" } dd { code { (org.slug) } } }
                div { dt { "Id" } dd { code { (org.id) } } }
                div { dt { "Created" } dd { (when(&org.created_at)) } }
            }
        }
        section.card {
            h2 { "Users" }
            @match &users {
                Ok(users) => {
                    table #users.data data-sortable {
                        (sortable_head(&["E-mail", "Name", "Role", "Status", "Created"]))
                        tbody {
                            @for u in users {
                                tr {
                                    td { (u.email) }
                                    td { (u.display_name) }
                                    td { (u.role) @if u.platform_admin { " · platform admin" } }
                                    td { @if u.disabled { "disabled" } @else { "active" } }
                                    td { (when(&u.created_at)) }
                                }
                            }
                            @if users.is_empty() { (empty_row(5, "No users yet.")) }
                        }
                    }
                }
                Err(f) => p.muted { (f.message()) },
            }
        }
        @if session.can("manage_users") {
            section.card #create {
                h2 { "Add a user" }
                form method="post" action=(format!("/console/orgs/{}/users", org.id)) data-busy="Adding…" {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="user-email" { "E-mail" }
                            input #user-email type="email" name="email" required;
                        }
                        div {
                            label for="user-name" { "Display name" }
                            input #user-name name="display_name" maxlength="200";
                        }
                        div {
                            label for="user-role" { "Role" }
                            (role_select("user-role", "admin"))
                        }
                        div {
                            label for="user-password" { "Password" }
                            input #user-password type="password" name="password" autocomplete="new-password" minlength="12" aria-describedby="user-password-help";
                            small #user-password-help { "At least 12 characters; leave empty for users who sign in through OIDC." }
                        }
                    }
                    button.primary type="submit" { "Add user" }
                }
            }
        }
    };
    page(&session, Nav::Orgs, &org.name, None, content)
}

pub(crate) async fn create_user(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let mut body = serde_json::json!({
        "email": form.get("email").unwrap_or_default(),
        "role": form.get("role").unwrap_or_else(|| "viewer".into()),
    });
    if let Some(name) = form.get("display_name") {
        body["display_name"] = name.into();
    }
    if let Some(password) = form.get("password") {
        body["password"] = password.into();
    }
    let to = format!("/console/orgs/{id}");
    match console
        .backend()
        .call::<_, UserView>(
            &session.caller,
            Method::POST,
            &format!("/api/v1/orgs/{id}/users"),
            &body,
        )
        .await
    {
        Ok(user) => redirect_with(
            &console,
            &headers,
            &to,
            Flash::info(format!("User {} added.", user.email)),
        ),
        Err(f) => back_with_error(&console, &headers, &format!("{to}#create"), &f),
    }
}

pub(crate) async fn api_keys(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let keys = match console
        .backend()
        .get::<Page<ApiKeyView>>(&session.caller, "/api/v1/api-keys")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        p.muted { "API keys act for you (or, for administrators, for another user) from scripts and the CLI. Their token is shown once, when created." }
        (table_filter("api-keys", "Filter keys"))
        table #api-keys.data data-sortable {
            (sortable_head(&["Name", "Prefix", "Role", "Scopes", "Created", "Expires", "Last used", ""]))
            tbody {
                @for k in &keys {
                    tr.revoked[k.revoked_at.is_some()] {
                        td { (k.name) }
                        td { code { (k.prefix) } }
                        td { (k.role) }
                        td { (if k.scopes.is_empty() { "all of the role".to_owned() } else { k.scopes.join(", ") }) }
                        td { (when(&k.created_at)) }
                        td { (optional_when(k.expires_at.as_deref())) }
                        td { (optional_when(k.last_used_at.as_deref())) }
                        td {
                            @if let Some(at) = &k.revoked_at { "revoked " (when(at)) }
                            @else { (action_button(&session, &format!("/console/api-keys/{}/revoke", k.id), "Revoke", Some("Revoke this API key? Scripts using it stop working."), true)) }
                        }
                    }
                }
                @if keys.is_empty() { (empty_row(8, "No API keys.")) }
            }
        }
        section.card #create {
            h2 { "Create an API key" }
            form method="post" action="/console/api-keys" data-busy="Creating…" {
                (csrf_input(&session))
                div.fields {
                    div {
                        label for="key-name" { "Name" }
                        input #key-name name="name" required maxlength="200";
                    }
                    div {
                        label for="key-role" { "Role" }
                        (role_select("key-role", &session.me.user.role))
                    }
                    div {
                        label for="key-expiry" { "Expires in (days)" }
                        input #key-expiry type="number" name="expires_in_days" min="1" max="3650";
                    }
                }
                fieldset {
                    legend { "Scopes (none: everything the role allows)" }
                    @for s in SCOPES {
                        label.check { input type="checkbox" name="scopes" value=(s); " " (s) }
                    }
                }
                button.primary type="submit" { "Create API key" }
            }
        }
    };
    page(&session, Nav::ApiKeys, "API keys", None, content)
}

pub(crate) async fn create_api_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let mut body = serde_json::json!({
        "name": form.get("name").unwrap_or_default(),
        "scopes": form.all("scopes"),
    });
    if let Some(role) = form.get("role") {
        body["role"] = role.into();
    }
    if let Some(days) = form.get("expires_in_days") {
        match days.parse::<i64>() {
            Ok(d) => body["expires_in_days"] = d.into(),
            Err(_) => {
                return redirect_with(
                    &console,
                    &headers,
                    "/console/api-keys#create",
                    Flash {
                        message: "Expiry must be a whole number of days.".into(),
                        error: true,
                        ..Flash::default()
                    },
                )
            }
        }
    }
    match console
        .backend()
        .call::<_, CreatedApiKey>(&session.caller, Method::POST, "/api/v1/api-keys", &body)
        .await
    {
        Ok(created) => redirect_with(
            &console,
            &headers,
            "/console/api-keys",
            Flash {
                message: format!("API key {} created.", created.key.name),
                error: false,
                secret: Some(created.token),
                secret_label: Some("API key token".into()),
            },
        ),
        Err(f) => back_with_error(&console, &headers, "/console/api-keys#create", &f),
    }
}

pub(crate) async fn revoke_api_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    match console
        .backend()
        .act(
            &session.caller,
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
        )
        .await
    {
        Ok(_) => redirect_with(
            &console,
            &headers,
            "/console/api-keys",
            Flash::info("API key revoked."),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/api-keys", &f),
    }
}

/// The signed-in user's own name and password (the API lets anyone change
/// their own).
pub(crate) async fn account(Extension(session): Extension<Session>) -> Response {
    let me = &session.me;
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "E-mail" } dd { (me.user.email) } }
                div { dt { "Organization" } dd { (me.org.name) } }
                div { dt { "Role" } dd { (me.user.role) @if me.user.platform_admin { " · platform admin" } } }
                div { dt { "Signed in with" } dd { (me.credential) } }
            }
        }
        section.card {
            h2 { "Change your name or password" }
            form method="post" action="/console/account" data-busy="Saving…" {
                (csrf_input(&session))
                div.fields {
                    div {
                        label for="account-name" { "Display name" }
                        input #account-name name="display_name" value=(me.user.display_name) maxlength="200";
                    }
                    div {
                        label for="account-password" { "New password" }
                        input #account-password type="password" name="password" autocomplete="new-password" minlength="12";
                    }
                    div {
                        label for="account-confirm" { "New password again" }
                        input #account-confirm type="password" name="confirm" autocomplete="new-password" minlength="12";
                    }
                }
                button.primary type="submit" { "Save" }
            }
        }
    };
    page(&session, Nav::Account, "Your account", None, content)
}

pub(crate) async fn update_account(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let refuse = |message: &str| {
        redirect_with(
            &console,
            &headers,
            "/console/account",
            Flash {
                message: message.into(),
                error: true,
                ..Flash::default()
            },
        )
    };
    let mut body = serde_json::Map::new();
    if let Some(name) = form
        .get("display_name")
        .filter(|n| *n != session.me.user.display_name)
    {
        body.insert("display_name".into(), name.into());
    }
    if let Some(password) = form.get("password") {
        if form.get("confirm").as_deref() != Some(password.as_str()) {
            return refuse("The two passwords differ.");
        }
        body.insert("password".into(), password.into());
    }
    if body.is_empty() {
        return refuse("Nothing to change.");
    }
    let path = format!(
        "/api/v1/orgs/{}/users/{}",
        session.me.org.id, session.me.user.id
    );
    match console
        .backend()
        .call::<_, UserView>(&session.caller, Method::PATCH, &path, &body)
        .await
    {
        Ok(_) => redirect_with(
            &console,
            &headers,
            "/console/account",
            Flash::info("Saved."),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/account", &f),
    }
}
