//! The OpenAPI 3.1 document, assembled from the handlers' annotations.

use crate::problem::{InvalidParam, Problem};
use crate::routes::{artifacts, chains, edge, fleet, health, identity, nodes, ops};
use crate::views::*;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hood", description = "Hood control plane API. Errors are RFC 9457 problem details."),
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
        artifacts::ArtifactView, artifacts::PushedArtifactView, fleet::HostView, fleet::WorkflowView, fleet::StepView, fleet::AbandonRequest, nodes::NodeView, nodes::NodeEventView, nodes::NodeAccepted, nodes::CreateNodeRequest,
        health::IncidentView, health::DeliveryView, health::DeliveryAttemptView, health::ChannelView,
        health::CreateChannelRequest, health::ChannelTestResult,
        edge::RpcKeyView, edge::CreatedRpcKey, edge::CreateRpcKeyRequest, edge::UpdateRpcKeyRequest,
        edge::RpcPlanView, edge::UsageView, edge::UsageRowView, edge::UsageTotals,
        LoginRequest, RefreshRequest, CreateOrgRequest, CreateUserRequest, UpdateUserRequest, CreateApiKeyRequest,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session JWT from /api/v1/auth/login, or an API key (`hood_…`)",
                    ))
                    .build(),
            ),
        );
    }
}
