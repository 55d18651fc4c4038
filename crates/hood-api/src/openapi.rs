//! The OpenAPI 3.1 document, assembled from the handlers' annotations.

use crate::problem::{InvalidParam, Problem};
use crate::routes::{chains, identity, ops};
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
    ),
    components(schemas(
        Problem, InvalidParam, OrgView, UserView, ApiKeyView, CreatedApiKey, TokenPair, MeView,
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
