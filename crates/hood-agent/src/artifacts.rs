//! Artifact download into a local cache keyed by SHA-256.

use crate::error::AgentError;
use crate::handle::AgentHandle;
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::FetchArtifactRequest;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt as _;

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl AgentHandle {
    /// Downloads an artifact through the gateway into the cache and returns
    /// its path (`artifacts/{sha256}`). The bytes must hash to what the
    /// gateway declares and, when given, to `expected_sha256`; otherwise
    /// nothing is kept and the download is refused. A cached copy with the
    /// expected hash is returned without a download.
    pub async fn fetch_artifact(
        &self,
        name: &str,
        version: &str,
        expected_sha256: Option<&str>,
    ) -> Result<PathBuf, AgentError> {
        let mismatch = |reason: String| AgentError::ArtifactMismatch {
            name: name.to_owned(),
            version: version.to_owned(),
            reason,
        };
        // What only an operator can fix is its own error, worded by the
        // gateway; anything else (transport, unavailable) stays retryable.
        let refused = |status: tonic::Status| match status.code() {
            tonic::Code::NotFound | tonic::Code::DataLoss | tonic::Code::FailedPrecondition => {
                AgentError::ArtifactNotServed {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    reason: status.message().to_owned(),
                }
            }
            _ => AgentError::from(status),
        };
        let expected = expected_sha256.map(str::to_ascii_lowercase);
        if let Some(sha) = &expected {
            if !is_sha256_hex(sha) {
                return Err(AgentError::Config(format!(
                    "expected sha256 of {name} {version} is not 64 hex digits"
                )));
            }
        }
        let dir = self.artifact_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| AgentError::io(&dir, e))?;
        if let Some(sha) = &expected {
            let cached = dir.join(sha);
            if tokio::fs::try_exists(&cached).await.unwrap_or(false) {
                return Ok(cached);
            }
        }

        let mut stream = AgentGatewayClient::new(self.channel()?)
            .fetch_artifact(FetchArtifactRequest {
                name: name.to_owned(),
                version: version.to_owned(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        let tmp = dir.join(format!(".download-{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| AgentError::io(&tmp, e))?;
            let mut hasher = Sha256::new();
            let mut declared: Option<(String, u64)> = None;
            let mut written: u64 = 0;
            while let Some(chunk) = stream.message().await.map_err(refused)? {
                if declared.is_none() {
                    let sha = chunk.sha256.to_ascii_lowercase();
                    if !is_sha256_hex(&sha) {
                        return Err(mismatch("gateway declared no valid sha256".into()));
                    }
                    if expected.as_ref().is_some_and(|e| *e != sha) {
                        return Err(mismatch(
                            "declared sha256 differs from the expected one".into(),
                        ));
                    }
                    declared = Some((sha, chunk.size));
                }
                let size = declared.as_ref().map_or(0, |d| d.1);
                written += chunk.data.len() as u64;
                if written > size {
                    return Err(mismatch(format!("more than the declared {size} bytes")));
                }
                hasher.update(&chunk.data);
                file.write_all(&chunk.data)
                    .await
                    .map_err(|e| AgentError::io(&tmp, e))?;
            }
            let (sha, size) = declared.ok_or_else(|| mismatch("empty response".into()))?;
            if written != size {
                return Err(mismatch(format!("got {written} of {size} bytes")));
            }
            let actual = hex::encode(hasher.finalize());
            if actual != sha {
                return Err(mismatch(
                    "sha256 of the downloaded bytes does not match".into(),
                ));
            }
            file.sync_all().await.map_err(|e| AgentError::io(&tmp, e))?;
            let path = dir.join(&sha);
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| AgentError::io(&path, e))?;
            Ok(path)
        }
        .await;
        match &result {
            Ok(path) => {
                tracing::info!(name, version, path = %path.display(), "downloaded artifact");
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                tracing::warn!(name, version, error = %e, "artifact download refused");
            }
        }
        result
    }
}
