//! [`StatusPageStore`] for [`SqlStore`].

use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as, query_scalar};
use crate::status_page::{PublicNode, StatusPageStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::{NodeId, OrgId, Timestamp};

#[derive(sqlx::FromRow)]
struct PublicNodeRow {
    node_id: String,
    org_id: String,
    made_public_at: i64,
}

impl TryFrom<PublicNodeRow> for PublicNode {
    type Error = StoreError;
    fn try_from(r: PublicNodeRow) -> StoreResult<Self> {
        Ok(PublicNode {
            node_id: codec::parse_id("node_id", &r.node_id)?,
            org_id: codec::parse_id("org_id", &r.org_id)?,
            made_public_at: Timestamp::from_millis(r.made_public_at),
        })
    }
}

#[async_trait]
impl StatusPageStore for SqlStore {
    async fn set_node_public(
        &self,
        org: OrgId,
        node: NodeId,
        public: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let owned = query_scalar::<i64>("SELECT count(*) FROM nodes WHERE id = $1 AND org_id = $2")
            .bind(node.to_string())
            .bind(org.to_string())
            .fetch_one(&mut tx)
            .await?;
        if owned == 0 {
            return Err(StoreError::NotFound("node"));
        }
        if public {
            query(
                "INSERT INTO public_status_nodes (node_id, org_id, made_public_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (node_id) DO NOTHING",
            )
            .bind(node.to_string())
            .bind(org.to_string())
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
        } else {
            query("DELETE FROM public_status_nodes WHERE node_id = $1")
                .bind(node.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn is_node_public(&self, node: NodeId) -> StoreResult<bool> {
        let n = query_scalar::<i64>("SELECT count(*) FROM public_status_nodes WHERE node_id = $1")
            .bind(node.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn public_nodes(&self) -> StoreResult<Vec<PublicNode>> {
        let rows = query_as::<PublicNodeRow>(
            "SELECT node_id, org_id, made_public_at FROM public_status_nodes \
             ORDER BY made_public_at, node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(PublicNode::try_from).collect()
    }
}
