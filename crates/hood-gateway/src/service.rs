//! The `AgentGateway` gRPC service: per-call authentication and the unary
//! and streaming handlers (the session itself lives in `session.rs`).

use crate::fleet::token_hash;
use crate::now;
use crate::session::run_session;
use crate::shared::{internal, Shared};
use crate::sources::ArtifactSourceError;
use futures::StreamExt as _;
use hood_agent_proto::v1::agent_gateway_server::AgentGateway;
use hood_agent_proto::v1::{
    AgentMessage, ArtifactChunk, EnrollRequest, EnrollResponse, FetchArtifactRequest,
    FetchNodeKeyRequest, FetchNodeKeyResponse, GatewayMessage, RenewRequest, RenewResponse,
    SnapshotAck, SnapshotChunk, SnapshotChunkEntry, SnapshotChunkList, SnapshotChunkRef,
    SnapshotManifest, SnapshotRef, TerminalDown, TerminalUp,
};
use hood_domain::lifecycle::HostState;
use hood_domain::NodeId;
use hood_pki::{Ca, PkiError};
use hood_store::fleet::EnrollOutcome;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Largest chunk sent to an agent: well under gRPC's 4 MiB message limit.
const MAX_CHUNK: usize = 256 * 1024;
/// Longest host name / agent version accepted (DNS name limit).
const MAX_LABEL: usize = 253;

/// The tonic service: a thin handle on [`Shared`].
#[derive(Clone)]
pub(crate) struct GatewayService {
    shared: Arc<Shared>,
}

impl GatewayService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The caller's view of one of its nodes' snapshots: authenticated,
    /// the node placed on the calling host, the name well-formed.
    async fn snapshot_store<T>(
        &self,
        request: &Request<T>,
        snapshot: Option<&SnapshotRef>,
    ) -> Result<Arc<dyn hood_snapshot::ChunkStore>, Status> {
        let (_, host) = self.shared.authenticate(request).await?;
        let r = snapshot.ok_or_else(|| Status::invalid_argument("snapshot is required"))?;
        let node: NodeId = r
            .node_id
            .parse()
            .map_err(|_| Status::invalid_argument("node_id is not a node id"))?;
        if !hood_domain::workload::valid_snapshot_name(&r.name) {
            return Err(Status::invalid_argument(
                "a snapshot name is 1-128 letters, digits, `-` and `_`",
            ));
        }
        let source = self
            .shared
            .snapshots
            .clone()
            .ok_or_else(|| Status::unimplemented("this gateway keeps no snapshots"))?;
        match source.open(host.id, node, &r.name).await {
            Ok(Some(store)) => Ok(store),
            Ok(None) => {
                tracing::warn!(host_id = %host.id, node_id = %node, "refused a snapshot call: node is not placed on this host");
                Err(Status::not_found("no such node on this host"))
            }
            Err(e) => Err(internal("snapshot source", e)),
        }
    }

    /// Answers an enrollment retry by the key that spent the token: a new
    /// certificate for the same host, recorded like any other.
    async fn reissue(
        &self,
        token: &hood_store::fleet::EnrollmentToken,
        req: &EnrollRequest,
        now: hood_domain::Timestamp,
    ) -> Result<Response<EnrollResponse>, Status> {
        let store = self.shared.fleet.store();
        let host = store
            .get_host(token.host_id)
            .await
            .map_err(|e| internal("load host", e))?
            .ok_or_else(|| Status::unauthenticated("invalid enrollment token"))?;
        if host.state != HostState::Ready {
            return Err(Status::failed_precondition("host is not enrolled"));
        }
        let issued = self
            .shared
            .ca
            .sign_host_csr(host.id, &req.csr_pem, self.shared.config.leaf_validity, now)
            .map_err(|e| match e {
                PkiError::BadCsr(_) => Status::invalid_argument("csr_pem is not a valid CSR"),
                other => internal("sign host certificate", other),
            })?;
        store
            .insert_host_certificate(&crate::authority::certificate_record(&issued, now))
            .await
            .map_err(|e| internal("record host certificate", e))?;
        tracing::info!(host_id = %host.id, serial = %issued.serial, "enrollment answer re-issued to the same key");
        Ok(Response::new(EnrollResponse {
            host_id: host.id.to_string(),
            certificate_pem: issued.cert_pem,
            ca_certificate_pem: self.shared.ca.cert_pem().to_owned(),
            not_after_unix_ms: issued.not_after.millis(),
            task_public_key: self
                .shared
                .config
                .task_public_key
                .clone()
                .unwrap_or_default(),
        }))
    }
}

fn label(value: &str) -> String {
    value.chars().take(MAX_LABEL).collect()
}

#[tonic::async_trait]
impl AgentGateway for GatewayService {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let req = request.into_inner();
        let store = self.shared.fleet.store();
        let now = now();
        let hash = token_hash(&req.token);
        // One message for unknown, spent and expired tokens: the caller
        // learns nothing about which tokens exist.
        let rejected = || Status::unauthenticated("invalid enrollment token");
        let token = store
            .find_enrollment_token(&hash)
            .await
            .map_err(|e| internal("find enrollment token", e))?
            .ok_or_else(rejected)?;
        let fingerprint = Ca::csr_key_fingerprint(&req.csr_pem)
            .map_err(|_| Status::invalid_argument("csr_pem is not a valid CSR"))?;
        if token.expires_at <= now {
            tracing::info!(host_id = %token.host_id, "refused an expired enrollment token");
            return Err(rejected());
        }
        if token.used_at.is_some() {
            // The same key asking again: its answer was lost (the control
            // plane died after spending the token). Only the holder of that
            // private key can use what is issued, so issue it again.
            if token.key_sha256.as_deref() == Some(fingerprint.as_str()) {
                return self.reissue(&token, &req, now).await;
            }
            tracing::info!(host_id = %token.host_id, "refused a spent enrollment token");
            return Err(rejected());
        }
        let host = store
            .get_host(token.host_id)
            .await
            .map_err(|e| internal("load host", e))?
            .ok_or_else(rejected)?;
        if host.state != HostState::Enrolling {
            tracing::info!(host_id = %host.id, state = %host.state, "enrollment refused: host is not waiting for its agent");
            return Err(Status::failed_precondition(
                "host is not waiting for enrollment",
            ));
        }
        let issued = self
            .shared
            .ca
            .sign_host_csr(host.id, &req.csr_pem, self.shared.config.leaf_validity, now)
            .map_err(|e| match e {
                PkiError::BadCsr(_) => Status::invalid_argument("csr_pem is not a valid CSR"),
                other => internal("sign host certificate", other),
            })?;
        let outcome = store
            .complete_enrollment(
                &hash,
                &fingerprint,
                &crate::authority::certificate_record(&issued, now),
                &label(&req.hostname),
                &label(&req.agent_version),
                now,
            )
            .await
            .map_err(|e| internal("complete enrollment", e))?;
        match outcome {
            EnrollOutcome::Enrolled => {
                tracing::info!(host_id = %host.id, serial = %issued.serial, hostname = %label(&req.hostname), "host enrolled");
                Ok(Response::new(EnrollResponse {
                    host_id: host.id.to_string(),
                    certificate_pem: issued.cert_pem,
                    ca_certificate_pem: self.shared.ca.cert_pem().to_owned(),
                    not_after_unix_ms: issued.not_after.millis(),
                    task_public_key: self
                        .shared
                        .config
                        .task_public_key
                        .clone()
                        .unwrap_or_default(),
                }))
            }
            EnrollOutcome::TokenRejected => Err(rejected()),
            EnrollOutcome::HostNotEnrolling(_) => Err(Status::failed_precondition(
                "host is not waiting for enrollment",
            )),
        }
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let (peer, host) = self.shared.authenticate(&request).await?;
        let req = request.into_inner();
        let now = now();
        let issued = self
            .shared
            .ca
            .sign_host_csr(host.id, &req.csr_pem, self.shared.config.leaf_validity, now)
            .map_err(|e| match e {
                PkiError::BadCsr(_) => Status::invalid_argument("csr_pem is not a valid CSR"),
                other => internal("sign host certificate", other),
            })?;
        self.shared
            .fleet
            .store()
            .insert_host_certificate(&crate::authority::certificate_record(&issued, now))
            .await
            .map_err(|e| internal("record certificate", e))?;
        tracing::info!(host_id = %host.id, old_serial = %peer.serial, serial = %issued.serial, "renewed host certificate");
        Ok(Response::new(RenewResponse {
            certificate_pem: issued.cert_pem,
            not_after_unix_ms: issued.not_after.millis(),
        }))
    }

    type SessionStream = ReceiverStream<Result<GatewayMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (peer, host) = self.shared.authenticate(&request).await?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run_session(self.shared.clone(), peer, host, inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type FetchArtifactStream = ReceiverStream<Result<ArtifactChunk, Status>>;

    async fn fetch_artifact(
        &self,
        request: Request<FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let (_, host) = self.shared.authenticate(&request).await?;
        let req = request.into_inner();
        let source = self
            .shared
            .artifacts
            .clone()
            .ok_or_else(|| Status::unimplemented("this gateway serves no artifacts"))?;
        let artifact = source
            .open(&req.name, &req.version)
            .await
            .map_err(|e| artifact_status(host.id, e))?;
        tracing::info!(host_id = %host.id, name = %req.name, version = %req.version, size = artifact.size, "serving artifact");
        let (tx, rx) = mpsc::channel(8);
        let host_id = host.id;
        tokio::spawn(async move {
            let mut header = Some((artifact.sha256, artifact.size));
            let mut body = artifact.body;
            let mut sent_any = false;
            while let Some(item) = body.next().await {
                let bytes = match item {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        let _ = tx.send(Err(artifact_status(host_id, e))).await;
                        return;
                    }
                };
                for piece in bytes.chunks(MAX_CHUNK) {
                    let (sha256, size) = header.take().unwrap_or_default();
                    let chunk = ArtifactChunk {
                        data: piece.to_vec(),
                        sha256,
                        size,
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                    sent_any = true;
                }
            }
            if !sent_any {
                // An empty artifact still tells the agent what it must be.
                let (sha256, size) = header.take().unwrap_or_default();
                let _ = tx
                    .send(Ok(ArtifactChunk {
                        data: Vec::new(),
                        sha256,
                        size,
                    }))
                    .await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_node_key(
        &self,
        request: Request<FetchNodeKeyRequest>,
    ) -> Result<Response<FetchNodeKeyResponse>, Status> {
        let (_, host) = self.shared.authenticate(&request).await?;
        let node: NodeId = request
            .get_ref()
            .node_id
            .parse()
            .map_err(|_| Status::invalid_argument("node_id is not a node id"))?;
        let source = self
            .shared
            .node_keys
            .clone()
            .ok_or_else(|| Status::unimplemented("this gateway serves no node keys"))?;
        let key = source
            .data_key(host.id, node)
            .await
            .map_err(|e| internal("node data key", e))?;
        match key {
            Some(key) => {
                tracing::info!(host_id = %host.id, node_id = %node, "served node data key");
                Ok(Response::new(FetchNodeKeyResponse {
                    data_key: key.expose().to_vec(),
                }))
            }
            None => {
                tracing::warn!(host_id = %host.id, node_id = %node, "refused a node key: node is not placed on this host");
                Err(Status::not_found("no such node on this host"))
            }
        }
    }

    async fn list_snapshot_chunks(
        &self,
        request: Request<SnapshotRef>,
    ) -> Result<Response<SnapshotChunkList>, Status> {
        let store = self
            .snapshot_store(&request, Some(request.get_ref()))
            .await?;
        let present = store.present().await.map_err(snapshot_status)?;
        Ok(Response::new(SnapshotChunkList {
            chunks: present
                .into_iter()
                .map(|(index, sha256)| SnapshotChunkEntry { index, sha256 })
                .collect(),
        }))
    }

    async fn put_snapshot_chunk(
        &self,
        request: Request<SnapshotChunk>,
    ) -> Result<Response<SnapshotAck>, Status> {
        let chunk_ref = request
            .get_ref()
            .chunk
            .clone()
            .ok_or_else(|| Status::invalid_argument("chunk is required"))?;
        let store = self
            .snapshot_store(&request, chunk_ref.snapshot.as_ref())
            .await?;
        let data = request.into_inner().data;
        let chunk = hood_snapshot::Chunk {
            index: chunk_ref.index,
            size: data.len() as u64,
            sha256: chunk_ref.sha256,
        };
        // What is stored under a checksum is what hashes to it.
        if hood_snapshot::sha256_hex(&data) != chunk.sha256 || chunk_ref.size != chunk.size {
            return Err(Status::data_loss(format!(
                "chunk {} does not match its SHA-256 or size",
                chunk.index
            )));
        }
        store.put(&chunk, data).await.map_err(snapshot_status)?;
        Ok(Response::new(SnapshotAck {}))
    }

    async fn get_snapshot_chunk(
        &self,
        request: Request<SnapshotChunkRef>,
    ) -> Result<Response<SnapshotChunk>, Status> {
        let store = self
            .snapshot_store(&request, request.get_ref().snapshot.as_ref())
            .await?;
        let r = request.into_inner();
        let chunk = hood_snapshot::Chunk {
            index: r.index,
            size: r.size,
            sha256: r.sha256.clone(),
        };
        let data = store.get(&chunk).await.map_err(snapshot_status)?;
        Ok(Response::new(SnapshotChunk {
            chunk: Some(r),
            data,
        }))
    }

    async fn put_snapshot_manifest(
        &self,
        request: Request<SnapshotManifest>,
    ) -> Result<Response<SnapshotAck>, Status> {
        let store = self
            .snapshot_store(&request, request.get_ref().snapshot.as_ref())
            .await?;
        let manifest: hood_snapshot::Manifest =
            serde_json::from_str(&request.get_ref().manifest_json)
                .map_err(|e| Status::invalid_argument(format!("manifest: {e}")))?;
        let present = store.present().await.map_err(snapshot_status)?;
        if let Some(missing) = manifest
            .chunks
            .iter()
            .find(|c| present.get(&c.index) != Some(&c.sha256))
        {
            return Err(Status::failed_precondition(format!(
                "chunk {} is not stored yet",
                missing.index
            )));
        }
        store
            .put_manifest(&manifest)
            .await
            .map_err(snapshot_status)?;
        Ok(Response::new(SnapshotAck {}))
    }

    type TerminalStream = ReceiverStream<Result<TerminalDown, Status>>;

    async fn terminal(
        &self,
        request: Request<Streaming<TerminalUp>>,
    ) -> Result<Response<Self::TerminalStream>, Status> {
        let (_, host) = self.shared.authenticate(&request).await?;
        let rx = crate::terminal::open(
            self.shared.clone(),
            host.id.to_string(),
            request.into_inner(),
        )
        .await?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_snapshot_manifest(
        &self,
        request: Request<SnapshotRef>,
    ) -> Result<Response<SnapshotManifest>, Status> {
        let store = self
            .snapshot_store(&request, Some(request.get_ref()))
            .await?;
        let manifest = store
            .manifest()
            .await
            .map_err(snapshot_status)?
            .ok_or_else(|| Status::not_found("the snapshot is not complete"))?;
        let manifest_json =
            serde_json::to_string(&manifest).map_err(|e| internal("manifest", e))?;
        Ok(Response::new(SnapshotManifest {
            snapshot: Some(request.into_inner()),
            manifest_json,
        }))
    }
}

/// A chunk store failure: missing objects are "not found", the rest is
/// retryable and logged here.
fn snapshot_status(err: hood_snapshot::SnapshotError) -> Status {
    match err {
        hood_snapshot::SnapshotError::Missing(_) => Status::not_found(err.to_string()),
        hood_snapshot::SnapshotError::Manifest(m) => Status::invalid_argument(m),
        other => internal("snapshot store", other),
    }
}

/// What an agent is told when an artifact cannot be served: what is wrong
/// and, for what an operator must fix, how. Store details stay in the log.
fn artifact_status(host: hood_domain::HostId, err: ArtifactSourceError) -> Status {
    match err {
        ArtifactSourceError::NotFound {
            ref name,
            ref version,
        } => {
            tracing::warn!(host_id = %host, artifact = %name, version = %version, "artifact asked for is not in the catalog");
            Status::not_found(format!(
                "{err}; push it with `hood artifact push {name} {version} FILE`"
            ))
        }
        ArtifactSourceError::ObjectMissing {
            ref name,
            ref version,
            ref sha256,
        } => {
            tracing::error!(host_id = %host, artifact = %name, version = %version, %sha256, "artifact object missing in the artifact store");
            Status::not_found(format!(
                "{err}; push it again with `hood artifact push {name} {version} FILE` to restore it"
            ))
        }
        ArtifactSourceError::Damaged {
            ref name,
            ref version,
        } => {
            tracing::error!(host_id = %host, artifact = %name, version = %version, "artifact damaged in the artifact store");
            Status::data_loss(err.to_string())
        }
        ArtifactSourceError::Unavailable(detail) => {
            tracing::error!(host_id = %host, error = %detail, "artifact store unavailable");
            Status::unavailable("artifact store unavailable (see the agent gateway's log)")
        }
    }
}
