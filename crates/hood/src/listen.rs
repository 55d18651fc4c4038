//! Binding the listeners of `hood up` and `hood serve`. When an address
//! cannot be bound, the error names the one setting that moves it: on one
//! machine every replica of a role needs its own address.

use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A listen address and the setting it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// What listens there, for the message.
    pub what: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
}

/// `hood serve`: the HTTP API of the api/auth roles, or the /healthz,
/// /readyz and /metrics of roles without one.
pub const SERVE_HTTP: Setting = Setting {
    what: "the HTTP listener",
    flag: "--listen",
    env: "HOOD_LISTEN",
};
/// `hood serve --role agent-gateway`.
pub const SERVE_GATEWAY: Setting = Setting {
    what: "the agent gateway",
    flag: "--gateway-listen",
    env: "HOOD_GATEWAY_LISTEN",
};
/// The edge, in `hood up` and `hood serve --role edge`.
pub const EDGE: Setting = Setting {
    what: "the edge",
    flag: "--edge-addr",
    env: "HOOD_EDGE_ADDR",
};
/// The S3 endpoint, in `hood up` and `hood serve --role storage`.
pub const S3: Setting = Setting {
    what: "the S3 endpoint",
    flag: "--s3-addr",
    env: "HOOD_S3_ADDR",
};
/// `hood up`: the api listener.
pub const UP_API: Setting = Setting {
    what: "the api",
    flag: "--api-addr",
    env: "HOOD_API_ADDR",
};
/// `hood up`: the auth listener.
pub const UP_AUTH: Setting = Setting {
    what: "the auth listener",
    flag: "--auth-addr",
    env: "HOOD_AUTH_ADDR",
};
/// `hood up`: the SSH gateway.
pub const UP_SSH: Setting = Setting {
    what: "the SSH gateway",
    flag: "--ssh-addr",
    env: "HOOD_SSH_ADDR",
};
/// `hood up`: the agent gateway.
pub const UP_GATEWAY: Setting = Setting {
    what: "the agent gateway",
    flag: "--gateway-addr",
    env: "HOOD_GATEWAY_ADDR",
};

/// Binds `addr`, or explains which setting to change.
pub async fn bind(addr: SocketAddr, setting: Setting) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, setting, &e))
}

fn bind_error(addr: SocketAddr, setting: Setting, e: &std::io::Error) -> anyhow::Error {
    let Setting { what, flag, env } = setting;
    if e.kind() == std::io::ErrorKind::AddrInUse {
        anyhow!(
            "{what} cannot listen on {addr}: the address is already in use (by another hood \
             process, perhaps a replica of the same role, or another program). Set {flag} \
             (or {env}) to a free address: several replicas of one role on one machine each \
             need their own"
        )
    } else {
        anyhow!("{what} cannot listen on {addr}: {e}. Set {flag} (or {env}) to another address")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_the_setting_that_moves_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr, SERVE_HTTP).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "the HTTP listener cannot listen on {addr}: the address is already in use"
            )),
            "{err}"
        );
        assert!(
            err.contains("Set --listen (or HOOD_LISTEN) to a free address"),
            "{err}"
        );
        assert!(err.contains("several replicas of one role"), "{err}");

        let err = bind(addr, EDGE).await.unwrap_err().to_string();
        assert!(err.contains("Set --edge-addr (or HOOD_EDGE_ADDR)"), "{err}");
    }

    #[tokio::test]
    async fn other_bind_failures_name_the_setting_too() {
        // TEST-NET-1 is never assigned to this machine.
        let addr: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let err = bind(addr, SERVE_GATEWAY).await.unwrap_err().to_string();
        assert!(
            err.starts_with("the agent gateway cannot listen on 192.0.2.1:0: "),
            "{err}"
        );
        assert!(
            err.ends_with("Set --gateway-listen (or HOOD_GATEWAY_LISTEN) to another address"),
            "{err}"
        );
    }
}
