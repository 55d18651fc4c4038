//! Terminal sessions into allocations (see [`hub`] for their life, and
//! [`frame`] for the WebSocket's wire format).

pub mod archive;
pub mod frame;
pub mod hub;
pub mod recording;
pub mod rendezvous;
pub mod ring;

pub use archive::{recording_key, ObjectArchive};
pub use frame::{ClientFrame, FrameError, ServerFrame};
pub use hub::{
    AgentInput, Ended, FinishedSession, HubConfig, HubError, Read, Session, SessionArchive,
    SessionInfo, TerminalHub,
};
pub use rendezvous::{AgentEnd, AgentLink, AgentRendezvous};
pub use ring::Replay;
