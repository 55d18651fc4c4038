//! Fixtures of the edge tests.

use hood_domain::rpc::{KeyScope, RpcKey};
use hood_domain::{OrgId, RpcKeyId};
use hood_store::Store;
use std::sync::Arc;

/// Stores an RPC key straight into the database (as the API would);
/// returns it and its token.
pub async fn insert_key(
    store: &Arc<dyn Store>,
    org: OrgId,
    plan: &str,
    scope: KeyScope,
) -> (RpcKey, String) {
    let generated = hood_identity::api_keys::generate_rpc_key();
    let key = RpcKey {
        id: RpcKeyId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: format!("test-{plan}"),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        plan: plan.into(),
        scope,
        created_at: super::now(),
        updated_at: super::now(),
        revoked_at: None,
        version: 1,
    };
    store.create_rpc_key(&key).await.expect("create rpc key");
    (key, generated.token)
}
