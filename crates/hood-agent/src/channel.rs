//! The gRPC channel to the gateway over `hood-pki`'s rustls client
//! configuration (one TLS policy for both ends, defined in one place).
//!
//! tonic only runs its own TLS for `https` URIs, so the endpoint is given an
//! `http` URI and the connector below does TLS itself: every byte on the
//! wire is still TLS 1.3 with mutual authentication.

use crate::config::AgentConfig;
use crate::error::AgentError;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// `host:port` of the gateway URL (scheme optional).
fn authority(url: &str) -> Result<(String, String), AgentError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    let uri: Uri = format!("http://{rest}")
        .parse()
        .map_err(|_| AgentError::Config(format!("gateway_url `{url}` is not host:port")))?;
    let host = uri
        .host()
        .ok_or_else(|| AgentError::Config(format!("gateway_url `{url}` has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(9090);
    Ok((host, format!("{}:{port}", uri.host().unwrap_or_default())))
}

/// A lazily connecting channel to the gateway named in `config`, trusting
/// only `ca_pem`. `identity` is (certificate PEM, key PEM); `None` only for
/// `Enroll`.
pub fn gateway_channel(
    config: &AgentConfig,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, AgentError> {
    let tls = Arc::new(hood_pki::client_config(ca_pem, identity)?);
    let (host, authority) = authority(&config.gateway_url)?;
    let name = config.server_name.clone().unwrap_or(host);
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| AgentError::Config(format!("`{name}` is not a valid TLS server name")))?;
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| AgentError::Config(format!("gateway_url: {e}")))?
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(std::time::Duration::from_secs(20))
        .keep_alive_timeout(std::time::Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = TlsConnector::from(tls.clone());
        let server_name = server_name.clone();
        async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(9090);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_gateway_urls() {
        assert_eq!(
            authority("https://127.0.0.1:9443").unwrap(),
            ("127.0.0.1".into(), "127.0.0.1:9443".into())
        );
        assert_eq!(
            authority("gw.example:9090/").unwrap(),
            ("gw.example".into(), "gw.example:9090".into())
        );
        assert_eq!(
            authority("https://[::1]:9090").unwrap(),
            ("::1".into(), "[::1]:9090".into())
        );
    }
}
