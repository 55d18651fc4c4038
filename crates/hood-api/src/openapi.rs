//! The OpenAPI 3.1 document, assembled from the handlers' annotations.
//!
//! Handlers declare their success responses and the errors only they can
//! give (409, 422, 429, 502, 503, or a 400/401 with a reason of their own).
//! [`ErrorResponses`] then derives, per operation, the errors its shape
//! implies, and makes every error a `application/problem+json` [`Problem`]:
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
use crate::routes::{artifacts, chains, edge, fleet, health, identity, nodes, ops};
use crate::views::*;
use hood_domain::lifecycle::{IncidentState, WorkflowState};
use hood_domain::machine::StateMachine;
use hood_domain::rpc::Granularity;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hood", description = "Hood control plane API. Every error is an RFC 9457 problem (`application/problem+json`)."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
        identity::login, identity::refresh, identity::logout, identity::me, identity::jwks,
        identity::list_orgs, identity::create_org, identity::get_org,
        identity::list_users, identity::create_user, identity::get_user, identity::update_user, identity::delete_user,
        identity::list_api_keys, identity::create_api_key, identity::get_api_key, identity::revoke_api_key,
        chains::list_chains, chains::get_chain,
        artifacts::list_artifacts, artifacts::get_artifact, artifacts::push_artifact,
        fleet::list_hosts, fleet::get_host, fleet::list_workflows, fleet::get_workflow, fleet::retry_workflow, fleet::abandon_workflow,
        nodes::node_logs,
        nodes::create_node, nodes::list_nodes, nodes::get_node, nodes::node_events, nodes::delete_node,
        health::list_incidents, health::get_incident, health::ack_incident, health::incident_deliveries,
        health::create_channel, health::list_channels, health::get_channel, health::delete_channel, health::test_channel,
        health::node_uptime,
        edge::create_rpc_key, edge::list_rpc_keys, edge::get_rpc_key, edge::update_rpc_key, edge::revoke_rpc_key,
        edge::list_rpc_plans, edge::usage,
    ),
    components(schemas(
        Problem, InvalidParam, OrgView, UserView, ApiKeyView, CreatedApiKey, TokenPair, MeView,
        ops::Liveness, ops::Readiness, chains::ChainView, chains::NodeTypeView, chains::ResourcesView, chains::BinaryView,
        artifacts::ArtifactView, fleet::HostView, fleet::WorkflowView, fleet::StepView, fleet::AbandonRequest, nodes::NodeView, nodes::NodeEventView, nodes::NodeAccepted, nodes::CreateNodeRequest,
        health::IncidentView, health::DeliveryView, health::DeliveryAttemptView, health::ChannelView,
        health::CreateChannelRequest, health::ChannelTestResult, health::UptimeView, health::UptimeBucketView,
        edge::RpcKeyView, edge::CreatedRpcKey, edge::CreateRpcKeyRequest, edge::UpdateRpcKeyRequest,
        edge::RpcPlanView, edge::UsageView, edge::UsageRowView, edge::UsageTotals,
        LoginRequest, RefreshRequest, CreateOrgRequest, CreateUserRequest, UpdateUserRequest, CreateApiKeyRequest,
    )),
    modifiers(&BearerAuth, &ErrorResponses),
)]
pub struct ApiDoc;

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
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
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

// -- schemas of parameters whose values are a closed set or a format --

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(values))
        .into()
}

/// `open | acknowledged | muted | resolved`, from the incident state machine.
pub fn incident_state_schema() -> Schema {
    string_enum(IncidentState::ALL.iter().map(|s| s.as_str()))
}

/// Every workflow state, from the workflow state machine.
pub fn workflow_state_schema() -> Schema {
    string_enum(WorkflowState::ALL.iter().map(|s| s.as_str()))
}

/// `hour | day`.
pub fn granularity_schema() -> Schema {
    string_enum(Granularity::ALL.iter().map(|g| g.as_str()))
}

/// The uptime windows (`24h | 7d | 30d`).
pub fn uptime_window_schema() -> Schema {
    string_enum(health::UPTIME_WINDOWS.iter().map(|(name, _)| *name))
}

/// A slug.
pub fn slug_schema() -> Schema {
    string_pattern(SLUG_PATTERN)
}

fn string_pattern(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(pattern))
        .into()
}

/// A slug (`hood_domain::validate::slug`).
pub const SLUG_PATTERN: &str = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$";
/// An artifact name (`hood_artifacts::names::name`).
pub const ARTIFACT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// An artifact version (`hood_artifacts::names::version`).
pub const ARTIFACT_VERSION_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$";
/// Every instant `parse_instant` accepts: Unix milliseconds or RFC 3339.
pub const INSTANT_PATTERN: &str = "^(-?[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$";

/// An artifact name.
pub fn artifact_name_schema() -> Schema {
    string_pattern(ARTIFACT_NAME_PATTERN)
}

/// An artifact version.
pub fn artifact_version_schema() -> Schema {
    string_pattern(ARTIFACT_VERSION_PATTERN)
}

/// An instant: RFC 3339 (`2025-01-31T00:00:00Z`) or Unix milliseconds. The
/// pattern admits every value the server parses; a value it admits can
/// still be refused (the 30th of February).
pub fn instant_schema() -> Schema {
    string_pattern(INSTANT_PATTERN)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

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
                if status.starts_with('2') {
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

    // Each pattern must admit every value the server accepts: a value it
    // refuses is "negative data" the fuzzer expects the server to reject.
    fn matches(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(value)
    }

    proptest::proptest! {
        #[test]
        fn the_slug_pattern_is_the_slug_rule(s in "[a-z0-9A-Z_-]{0,70}") {
            let valid = hood_domain::validate::slug("s", &s).is_ok();
            proptest::prop_assert_eq!(matches(SLUG_PATTERN, &s), valid);
        }

        #[test]
        fn the_artifact_patterns_are_the_artifact_rules(s in "[a-zA-Z0-9._+/ -]{0,140}") {
            let name = hood_artifacts::names::name(&s).is_ok();
            proptest::prop_assert_eq!(matches(ARTIFACT_NAME_PATTERN, &s), name);
            let version = hood_artifacts::names::version(&s).is_ok();
            proptest::prop_assert_eq!(matches(ARTIFACT_VERSION_PATTERN, &s), version);
        }

        #[test]
        fn the_instant_pattern_admits_every_parsed_instant(
            s in "-?[0-9]{1,20}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?|[0-9TZ:.+-]{0,30}",
            ms in -62_135_596_800_000i64..253_402_300_799_999i64,
        ) {
            if crate::routes::edge::parse_instant("from", &s).is_ok() {
                proptest::prop_assert!(matches(INSTANT_PATTERN, &s), "{}", s);
            }
            let rendered = crate::clock::rfc3339(hood_domain::Timestamp::from_millis(ms));
            proptest::prop_assert!(matches(INSTANT_PATTERN, &rendered), "{}", rendered);
            proptest::prop_assert!(matches(INSTANT_PATTERN, &ms.to_string()));
        }
    }
}
