//! Generated types and service stubs of the agent protocol
//! (`proto/agent.proto`, package `hood.agent.v1`).

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("hood.agent.v1");
}
