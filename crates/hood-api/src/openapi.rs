//! The OpenAPI 3.1 document, assembled from the handlers' annotations.
//!
//! Handlers declare their success responses and the errors only they can
//! give (409, 422, 429, 502, 503, or a 400/401 with a reason of their own).
//! [`ErrorResponses`] then derives, per operation, the errors its shape
//! implies, and makes every error an `application/problem+json` [`Problem`]:
//!
//! | the operation has | so it can answer |
//! |---|---|
//! | path, query or header parameters, or a body | 400 |
//! | a bearer security requirement | 401 |
//! | permissions listed in its security requirement | 403 |
//! | path parameters | 404 |
//! | a request body | 413 |
//! | a JSON request body | 415 |
//! | a security requirement or a body (it reaches the store) | 500 |
//!
//! The unit tests below hold the document to these rules, and
//! schemathesis (`crates/hood/tests/openapi_fuzz.rs`) holds the server to
//! the document.

use crate::problem::{InvalidParam, Problem, PROBLEM_JSON};
use crate::routes::{
    allocations, artifacts, billing, budgets, chains, containers, corrections, credits, edge,
    fleet, health, identity, ingress, invoicing, keys, ledger, nodes, notifications, ops, rollouts,
    service_accounts, snapshots, ssh_keys, storage, storage_uploads, terminal,
};
use crate::views::*;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hood", description = "Hood control plane API. Every error is an RFC 9457 problem (`application/problem+json`)."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, serve_document,
        identity::login, identity::refresh, identity::logout, identity::me, identity::jwks,
        identity::list_orgs, identity::create_org, identity::get_org,
        identity::list_users, identity::create_user, identity::get_user, identity::update_user, identity::delete_user,
        identity::list_api_keys, identity::create_api_key, identity::get_api_key, identity::revoke_api_key,
        chains::list_chains, chains::get_chain,
        artifacts::list_artifacts, artifacts::get_artifact, artifacts::push_artifact,
        fleet::list_hosts, fleet::get_host, fleet::host_metrics, fleet::list_workflows, fleet::get_workflow, fleet::retry_workflow, fleet::abandon_workflow,
        nodes::node_logs,
        nodes::follow_node_logs,
        nodes::create_node, nodes::list_nodes, nodes::get_node, nodes::node_events, nodes::delete_node,
        nodes::get_status_page, nodes::set_status_page, nodes::node_sync, nodes::reconfigure_node,
        nodes::get_node_labels, nodes::set_node_labels,
        health::list_incidents, health::get_incident, health::ack_incident, health::incident_deliveries,
        health::create_channel, health::list_channels, health::get_channel, health::delete_channel, health::test_channel,
        health::node_uptime,
        edge::create_rpc_key, edge::list_rpc_keys, edge::get_rpc_key, edge::update_rpc_key, edge::revoke_rpc_key,
        edge::list_rpc_plans, edge::usage,
        ledger::list_ledgers, ledger::create_accounts, ledger::list_accounts, ledger::get_account,
        ledger::create_transfers, ledger::list_transfers, ledger::get_transfer, ledger::transfer_proof,
        ledger::list_checkpoints, ledger::create_checkpoint, ledger::public_key, ledger::consistency,
        billing::ingest, billing::readings,
        invoicing::create_rate_card, invoicing::list_rate_cards, invoicing::get_rate_card,
        invoicing::create_subscription, invoicing::list_subscriptions, invoicing::get_subscription,
        invoicing::cancel_subscription, invoicing::close_period, invoicing::list_invoices,
        invoicing::get_invoice, invoicing::print_invoice, invoicing::record_payment,
        invoicing::checkout, invoicing::get_checkout, invoicing::stripe_webhook, invoicing::reconciliation,
        credits::get_credits, credits::enable_credits, credits::top_up, credits::refund, credits::checkout,
        budgets::get_budget, budgets::set_budget,
        corrections::void_invoice, corrections::credit_invoice, corrections::list_credit_notes,
        keys::export_keys,
        rollouts::create_rollout, rollouts::list_rollouts, rollouts::get_rollout,
        rollouts::start_rollout, rollouts::pause_rollout, rollouts::resume_rollout,
        rollouts::abort_rollout, rollouts::approve_rollout,
        snapshots::take_snapshot, snapshots::list_snapshots, snapshots::restore_snapshot,
        allocations::list_skus, allocations::create_allocation, allocations::list_allocations,
        allocations::get_allocation, allocations::release_allocation, allocations::force_release,
        allocations::allocation_logs,
        allocations::follow_allocation_logs,
        terminal::allocation_terminal,
        allocations::get_allocation_budget, allocations::set_allocation_budget,
        allocations::remove_allocation_budget,
        allocations::declare_capacity, allocations::host_capacity, allocations::list_audit,
        storage::list_namespaces, storage::create_namespace, storage::get_namespace,
        storage::delete_namespace, storage::list_objects, storage::get_object, storage::put_object,
        storage::delete_object, storage::presign_object, storage::get_presigned,
        storage::put_presigned, storage::get_public,
        storage_uploads::create_upload, storage_uploads::list_uploads, storage_uploads::get_upload, storage_uploads::put_part,
        storage_uploads::complete_upload, storage_uploads::abort_upload,
        service_accounts::list_service_accounts, service_accounts::create_service_account,
        service_accounts::get_service_account, service_accounts::set_grants,
        service_accounts::delete_service_account, service_accounts::create_service_account_key,
        service_accounts::create_s3_key, service_accounts::list_s3_keys,
        service_accounts::revoke_s3_key,
        ssh_keys::list_ssh_keys, ssh_keys::add_ssh_key, ssh_keys::remove_ssh_key,
        containers::create_container, containers::list_containers, containers::get_container,
        containers::start_container, containers::stop_container, containers::restart_container,
        containers::delete_container, containers::container_logs,
        ingress::by_path,
        notifications::list_notifications, notifications::mark_read, notifications::stream,
    ),
    components(schemas(
        Problem, InvalidParam, OrgView, UserView, ApiKeyView, CreatedApiKey, TokenPair, MeView,
        ops::Liveness, ops::Readiness, chains::ChainView, chains::NodeTypeView, chains::ResourcesView, chains::BinaryView,
        artifacts::ArtifactView, artifacts::PushedArtifactView, fleet::HostView, fleet::HostMetricsView, fleet::HostMetricPointView, fleet::WorkflowView, fleet::StepView, fleet::AbandonRequest, nodes::NodeView, nodes::NodeLogLine, nodes::NodeEventView, nodes::NodeAccepted, nodes::CreateNodeRequest, nodes::SnapshotSeedRequest, nodes::StatusPageVisibility, nodes::NodeSyncView,
        health::IncidentView, health::DeliveryView, health::DeliveryAttemptView, health::ChannelView,
        health::CreateChannelRequest, health::ChannelTestResult, health::UptimeView, health::UptimeBucketView,
        edge::RpcKeyView, edge::CreatedRpcKey, edge::CreateRpcKeyRequest, edge::UpdateRpcKeyRequest,
        edge::RpcPlanView, edge::UsageView, edge::UsageRowView, edge::UsageTotals,
        ledger::LedgerView, ledger::NewAccountRequest, ledger::CreateAccountsRequest, ledger::ItemResult, ledger::BatchResults,
        ledger::NewTransferRequest, ledger::CreateTransfersRequest, ledger::TransferView, ledger::CheckpointView, ledger::PublicKeyView,
        billing::MeterEventInput, billing::MeterEventBatch, billing::MeterIngestView, billing::ReadingView, billing::MeterReadingsView,
        invoicing::RateInput, invoicing::TierInput, invoicing::PriceInput, invoicing::PriceRuleInput,
        invoicing::MeterDefinitionInput, invoicing::RateCardInput, invoicing::RateCardView,
        invoicing::TermsInput, invoicing::SubscriptionInput, invoicing::SubscriptionView,
        invoicing::CancelInput, invoicing::ClosePeriodInput, invoicing::CloseFailureView,
        invoicing::CloseReportView, invoicing::LineView, invoicing::ReadingLineView,
        invoicing::PaymentView, invoicing::InvoiceView, invoicing::PaymentInput,
        invoicing::CheckoutInput, invoicing::CheckoutView, invoicing::WebhookView,
        invoicing::ReconciliationItemView, invoicing::ReconciliationView,
        credits::CreditsViewBody, credits::EnableCreditsInput, credits::TopUpInput,
        credits::CreditsCheckoutInput, credits::RefundInput, credits::RefundView,
        budgets::BudgetInput, budgets::BudgetMeasurement, budgets::BudgetView,
        corrections::VoidInput, corrections::CreditNoteInput, invoicing::CreditNoteView,
        keys::KeyExportRequest, keys::KeyExportView,
        rollouts::CreateRolloutRequest, rollouts::RolloutView, rollouts::RolloutNodeView,
        rollouts::RolloutPolicyView, rollouts::RolloutProgressView,
        snapshots::SnapshotView, snapshots::TakeSnapshotRequest, snapshots::SnapshotAccepted,
        snapshots::RestoreRequest,
        allocations::SkuView, allocations::GpuShapeView, allocations::GpuClaimView,
        allocations::ReservationView, allocations::IdlePolicyView, allocations::AllocationView,
        allocations::AllocationLogsView, allocations::AllocationBudgetView,
        allocations::AllocationBudgetInput,
        allocations::CreateAllocationRequest, allocations::ForceReleaseRequest, allocations::GpuCapacityView, allocations::CapacityInput,
        allocations::FreeView, allocations::MigFreeView, allocations::GpuInventoryView, allocations::HostCapacityView, allocations::AuditView,
        storage::NamespaceQuotaView, storage::NamespaceUsageView, storage::NamespaceView, storage::CreateNamespaceRequest,
        storage::ObjectView, storage::ObjectPageView, storage::ObjectWrittenView, storage::PresignRequest,
        storage::PresignedView,
        storage_uploads::CreateUploadRequest, storage_uploads::UploadPartView, storage_uploads::UploadView,
        storage_uploads::UploadSummaryView, storage_uploads::UploadPageView,
        storage_uploads::CompletedPartRequest, storage_uploads::CompleteUploadRequest,
        service_accounts::GrantView, service_accounts::ServiceAccountView,
        service_accounts::CreateServiceAccountRequest, service_accounts::SetGrantsRequest,
        service_accounts::CreateServiceAccountKeyRequest,
        service_accounts::S3KeyView, service_accounts::CreatedS3Key,
        ssh_keys::SshKeyView, ssh_keys::AddSshKeyRequest,
        containers::ContainerView, containers::CreateContainerRequest, containers::RestartView,
        notifications::NotificationView, notifications::NotificationPageView,
        notifications::MarkReadRequest, notifications::MarkReadView,
        hood_ledger::wire::AccountRecord, hood_ledger::wire::TransferRecord, hood_ledger::wire::InclusionProof, hood_ledger::wire::ConsistencyProof,
        LoginRequest, RefreshRequest, CreateOrgRequest, CreateUserRequest, UpdateUserRequest, CreateApiKeyRequest,
    )),
    modifiers(&BearerAuth, &ErrorResponses, &CreatedLinks),
)]
pub struct ApiDoc;

/// The document as served. utoipa 5 writes a link's fields in snake case
/// (`operation_id`); OpenAPI spells them in camel case, so they are renamed
/// here.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let responses = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
    // An object (or a last part) may be empty: these uploads take no body
    // at all (utoipa's macro marks every declared body required).
    for path in [
        "/api/v1/storage/namespaces/{name}/objects/{key}",
        "/api/v1/storage/presigned/{namespace_id}/{key}",
        "/api/v1/storage/namespaces/{name}/uploads/{upload_id}/parts/{number}",
    ] {
        if let Some(body) = doc["paths"][path]["put"]
            .get_mut("requestBody")
            .and_then(|b| b.as_object_mut())
        {
            body.insert("required".into(), serde_json::Value::Bool(false));
        }
    }
    doc
}

/// The name of the bearer security scheme operations refer to.
pub const BEARER: &str = "bearer";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session JWT from /api/v1/auth/login, or an API key (`hood_…`). \
                         An operation's requirement lists the permissions it checks \
                         (`platform_admin`: platform administrators only); a credential \
                         without one is refused with 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error responses every operation shares, by status: a component name
/// and what it means.
const COMMON_ERRORS: [(&str, &str, &str); 7] = [
    (
        "400",
        "BadRequest",
        "The request is malformed: an invalid path or query parameter, header or body. \
         `invalid-params` names each bad field.",
    ),
    (
        "401",
        "Unauthorized",
        "No credentials, or credentials that are invalid, expired or revoked.",
    ),
    (
        "403",
        "Forbidden",
        "The credential lacks a permission this operation needs.",
    ),
    (
        "404",
        "NotFound",
        "No such resource, or one the caller may not see.",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than the limit.",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The request body is not `application/json`.",
    ),
    (
        "500",
        "InternalError",
        "An internal failure; the details are in the server's log.",
    ),
];

/// The operations of a path (the router serves no other methods).
fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch]
        .into_iter()
        .flatten()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// Adds to every operation the error responses its shape implies and turns
/// every error response into problem JSON (see the module docs).
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description) in COMMON_ERRORS {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(problem_response(description)));
        }
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                add_implied_errors(op);
            }
        }
    }
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The permissions an operation's bearer requirement lists (`None`: the
/// operation is public).
fn required_permissions(op: &Operation) -> Option<Vec<String>> {
    let requirements = op.security.as_ref()?;
    let mut found = None;
    for requirement in requirements {
        // The requirement's map is private; its serialized form is not.
        let value = serde_json::to_value(requirement).ok()?;
        if let Some(scopes) = value.get(BEARER).and_then(|s| s.as_array()) {
            let list: &mut Vec<String> = found.get_or_insert_with(Vec::new);
            list.extend(scopes.iter().filter_map(|s| s.as_str().map(str::to_owned)));
        }
    }
    found
}

fn add_implied_errors(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path_params = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let body_types: Vec<&str> = op
        .request_body
        .as_ref()
        .map(|b| b.content.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let has_body = !body_types.is_empty();
    let permissions = required_permissions(op);
    let implied = [
        ("400", has_body || !params.is_empty()),
        ("401", permissions.is_some()),
        ("403", permissions.as_ref().is_some_and(|p| !p.is_empty())),
        ("404", has_path_params),
        ("413", has_body),
        ("415", body_types.contains(&"application/json")),
        ("500", has_body || permissions.is_some()),
    ];
    let responses = &mut op.responses.responses;
    for (status, applies) in implied {
        if applies && !responses.contains_key(status) {
            responses.insert(status.to_owned(), RefOr::T(Response::new("")));
        }
    }
    for (status, response) in responses.iter_mut() {
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        let RefOr::T(r) = response else { continue };
        let common = COMMON_ERRORS.iter().find(|(s, _, _)| s == status);
        match common {
            // Nothing said beyond the status: the shared component.
            Some((_, name, _)) if r.description.is_empty() => {
                *response = RefOr::Ref(Ref::from_response_name(*name));
            }
            _ => *r = problem_response(&r.description),
        }
    }
}

/// Operations that create a resource: (path, success status, JSON pointer
/// to the new id in the answer, the path parameter that names it).
const CREATES: [(&str, &str, &str, &str); 7] = [
    ("/api/v1/orgs", "201", "/id", "org_id"),
    ("/api/v1/orgs/{org_id}/users", "201", "/id", "user_id"),
    ("/api/v1/api-keys", "201", "/key/id", "key_id"),
    ("/api/v1/rpc-keys", "201", "/id", "key_id"),
    ("/api/v1/notification-channels", "201", "/id", "channel_id"),
    ("/api/v1/nodes", "202", "/node/id", "node_id"),
    ("/api/v1/allocations", "201", "/id", "allocation_id"),
];

/// OpenAPI links from each create to the operations on what it created
/// (`POST /orgs` → `GET /orgs/{org_id}`, …), so clients and the fuzzer's
/// stateful phase can follow them.
struct CreatedLinks;

impl Modify for CreatedLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (create_path, status, pointer, param) in CREATES {
            let prefix = format!("{create_path}/{{{param}}}");
            let mut links = Vec::new();
            for (path, item) in &openapi.paths.paths {
                if !(path == &prefix || path.starts_with(&format!("{prefix}/"))) {
                    continue;
                }
                for target in operations(item) {
                    let Some(id) = &target.operation_id else {
                        continue;
                    };
                    let mut link = LinkBuilder::new().operation_id(id);
                    let mut complete = true;
                    for p in target.parameters.iter().flatten() {
                        if p.parameter_in != ParameterIn::Path {
                            continue;
                        }
                        if p.name == param {
                            link = link.parameter(&p.name, format!("$response.body#{pointer}"));
                        } else if create_path.contains(&format!("{{{}}}", p.name)) {
                            // A parent's id, as the create was called with it.
                            link = link.parameter(&p.name, format!("$request.path.{}", p.name));
                        } else {
                            // Needs an id the create does not know (a user
                            // of a created org): no link.
                            complete = false;
                        }
                    }
                    if complete {
                        links.push((id.clone(), link.build()));
                    }
                }
            }
            let Some(item) = openapi.paths.paths.get_mut(create_path) else {
                continue;
            };
            let Some(RefOr::T(response)) = item
                .post
                .as_mut()
                .and_then(|op| op.responses.responses.get_mut(status))
            else {
                continue;
            };
            for (name, link) in links {
                response.links.insert(name, RefOr::T(link));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::Value;

    use super::document;

    /// Every (path, method, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    /// The response of `op` for `status`, with a component reference resolved.
    fn response(doc: &Value, op: &Value, status: &str) -> Option<Value> {
        let r = op["responses"].get(status)?;
        Some(match r.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                doc["components"]["responses"][name].clone()
            }
            None => r.clone(),
        })
    }

    fn statuses(op: &Value) -> Vec<String> {
        op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_error_is_problem_json() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            for status in statuses(&op) {
                // Successes, and a WebSocket's 101 Switching Protocols.
                if status.starts_with('2') || status == "101" {
                    continue;
                }
                let r = response(&doc, &op, &status).unwrap();
                let content = r["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    vec![PROBLEM_JSON],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content[PROBLEM_JSON]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                assert!(
                    !r["description"].as_str().unwrap().is_empty(),
                    "{method} {path} {status} says what it means"
                );
            }
        }
    }

    #[test]
    fn errors_follow_from_each_operations_shape() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            let has = |s: &str| statuses(&op).iter().any(|x| x == s);
            let secured = op.get("security").is_some();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let body = op.get("requestBody").is_some();
            let label = format!("{method} {path}");
            assert_eq!(
                has("401"),
                secured || path.starts_with("/api/v1/auth/"),
                "{label}"
            );
            assert_eq!(
                has("400"),
                body || !params.is_empty() || path == "/api/v1/auth/logout",
                "{label}"
            );
            if params.iter().any(|p| p["in"] == "path") {
                assert!(has("404"), "{label}");
            }
            if body {
                assert!(has("413"), "{label}");
                let json = op["requestBody"]["content"]
                    .get("application/json")
                    .is_some();
                assert_eq!(has("415"), json, "{label}");
            }
            assert_eq!(has("500"), secured || body, "{label}");
        }
    }

    #[test]
    fn public_operations_do_not_claim_authentication_errors() {
        let doc = document();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/.well-known/jwks.json",
        ] {
            let op = &doc["paths"][path]["get"];
            assert!(op.get("security").is_none(), "{path}");
            for s in ["400", "401", "403", "500"] {
                assert!(op["responses"].get(s).is_none(), "{path} {s}");
            }
        }
        let readyz = &doc["paths"]["/readyz"]["get"]["responses"];
        assert!(readyz.get("503").is_some());
    }

    #[test]
    fn permissions_decide_403() {
        let doc = document();
        let me = &doc["paths"]["/api/v1/me"]["get"];
        assert!(me["responses"].get("401").is_some());
        assert!(
            me["responses"].get("403").is_none(),
            "any valid credential may ask who it is"
        );
        let nodes = &doc["paths"]["/api/v1/nodes"]["post"];
        assert_eq!(nodes["security"][0][BEARER], serde_json::json!(["operate"]));
        assert!(nodes["responses"].get("403").is_some());
    }

    #[test]
    fn success_bodies_say_their_media_type() {
        let doc = document();
        let ok = |path: &str| doc["paths"][path]["get"]["responses"]["200"]["content"].clone();
        assert!(ok("/metrics").get("application/openmetrics-text").is_some());
        assert!(ok("/openapi.json").get("application/json").is_some());
        assert!(ok("/healthz").get("application/json").is_some());
        assert!(ok("/api/v1/chains").get("application/json").is_some());
        for (path, method) in [
            ("/api/v1/api-keys/{key_id}", "delete"),
            ("/api/v1/rpc-keys/{key_id}", "delete"),
            ("/api/v1/auth/logout", "post"),
        ] {
            let r = &doc["paths"][path][method]["responses"]["204"];
            assert!(
                r.get("content").is_none(),
                "{method} {path}: 204 has no body"
            );
        }
        let accepted = &doc["paths"]["/api/v1/nodes"]["post"]["responses"]["202"]["content"];
        assert_eq!(
            accepted["application/json"]["schema"]["$ref"],
            "#/components/schemas/NodeAccepted"
        );
    }

    #[test]
    fn query_parameters_carry_their_constraints() {
        let doc = document();
        let params = |path: &str| {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .clone()
        };
        let find = |list: &[Value], name: &str| {
            list.iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{name}"))
                .clone()
        };
        let usage = params("/api/v1/usage");
        assert_eq!(find(&usage, "key")["schema"]["format"], "uuid");
        assert_eq!(
            find(&usage, "granularity")["schema"]["enum"],
            serde_json::json!(["hour", "day"])
        );
        assert!(find(&usage, "from")["schema"]["pattern"].is_string());
        let incidents = params("/api/v1/incidents");
        assert_eq!(find(&incidents, "limit")["schema"]["minimum"], 1);
        assert_eq!(find(&incidents, "limit")["schema"]["maximum"], 1000);
        assert_eq!(
            find(&incidents, "state")["schema"]["enum"],
            serde_json::json!(["open", "acknowledged", "muted", "resolved"])
        );
    }

    #[test]
    fn creates_link_to_what_they_created() {
        let doc = document();
        let links =
            &doc["paths"]["/api/v1/orgs/{org_id}/users"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["get_user"]["operationId"], "get_user");
        assert_eq!(
            links["get_user"]["parameters"]["user_id"],
            "$response.body#/id"
        );
        assert_eq!(
            links["get_user"]["parameters"]["org_id"],
            "$request.path.org_id"
        );
        assert!(links.get("delete_user").is_some());
        let keys = &doc["paths"]["/api/v1/api-keys"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            keys["get_api_key"]["parameters"]["key_id"],
            "$response.body#/key/id"
        );
        let orgs = &doc["paths"]["/api/v1/orgs"]["post"]["responses"]["201"]["links"];
        assert!(orgs.get("list_users").is_some() && orgs.get("create_user").is_some());
        assert!(
            orgs.get("get_user").is_none(),
            "a user id is not the org's answer"
        );
        // Every link names an operation of the document, and takes what it
        // passes from the create's path or answer.
        let ids: Vec<String> = operations(&doc)
            .iter()
            .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
            .collect();
        for (path, _, _, _) in CREATES {
            let op = doc["paths"][path]["post"]["responses"].as_object().unwrap();
            let links = op.values().filter_map(|r| r.get("links")).next().unwrap();
            assert!(!links.as_object().unwrap().is_empty(), "{path}");
            for link in links.as_object().unwrap().values() {
                assert!(ids.iter().any(|i| *i == link["operationId"]), "{link}");
                for value in link["parameters"].as_object().unwrap().values() {
                    let value = value.as_str().unwrap();
                    if let Some(name) = value.strip_prefix("$request.path.") {
                        assert!(path.contains(&format!("{{{name}}}")), "{path}: {value}");
                    } else {
                        assert!(value.starts_with("$response.body#/"), "{value}");
                    }
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, body = Object, content_type = "application/json", description = "This OpenAPI 3.1 document")))]
/// This API's OpenAPI 3.1 document, generated from the code.
pub async fn serve_document() -> axum::Json<serde_json::Value> {
    axum::Json(document())
}
