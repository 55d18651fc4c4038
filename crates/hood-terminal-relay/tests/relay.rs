//! The relay against a real NATS server: a gateway-side rendezvous joins a
//! host's stream to a session held by another connection's hub, carries
//! input and output both ways in order, refuses what the hub refuses, and
//! notices when either side goes away.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use hood_terminal::{
    AgentInput, ClientFrame, Ended, HubConfig, HubError, Read, Replay, SessionInfo, TerminalHub,
};
use hood_terminal_relay::{RelayConfig, TerminalRelay};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

fn config() -> RelayConfig {
    RelayConfig {
        attach_timeout: Duration::from_millis(500),
        ping_interval: Duration::from_millis(100),
        silence_limit: Duration::from_millis(800),
    }
}

fn prefix() -> String {
    format!("hoodtest_{}", Uuid::new_v4().simple())
}

fn info(host: &str) -> SessionInfo {
    SessionInfo {
        id: Uuid::now_v7(),
        allocation_id: "a1".into(),
        host_id: host.into(),
        org_id: None,
        actor: "user:u1".into(),
        request_id: None,
        opened_at_ms: 0,
        cols: 80,
        rows: 24,
    }
}

async fn next_input(input: &mut mpsc::UnboundedReceiver<AgentInput>) -> Option<AgentInput> {
    tokio::time::timeout(Duration::from_secs(5), input.recv())
        .await
        .expect("input in time")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An API side (a hub answering relayed attaches) and a gateway side on
/// their own connections, sharing a fresh subject prefix.
async fn two_sides(url: &str) -> (Arc<TerminalHub>, TerminalRelay, tokio::task::JoinHandle<()>) {
    let prefix = prefix();
    let api = TerminalRelay::connect(url, &prefix, config())
        .await
        .unwrap();
    let gateway = TerminalRelay::connect(url, &prefix, config())
        .await
        .unwrap();
    let hub = Arc::new(TerminalHub::new(HubConfig::default()));
    let serving = api.serve_sessions(hub.clone()).await.unwrap();
    (hub, gateway, serving)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_host_serves_a_session_held_by_another_process() {
    let Some(url) = hood_testkit::nats_url("terminal relay") else {
        return;
    };
    let (hub, gateway, _serving) = two_sides(&url).await;
    let rendezvous = gateway.rendezvous(None);

    let session = hub.open(info("host-a"));
    let id = session.info().id;
    session
        .input(ClientFrame::Input(b"typed early\r".to_vec()))
        .unwrap();

    // What the holder refuses is refused across the relay.
    assert!(matches!(
        rendezvous.attach_agent(Uuid::now_v7(), "host-a").await,
        Err(HubError::NoSession(_))
    ));
    assert_eq!(
        rendezvous.attach_agent(id, "host-b").await.err(),
        Some(HubError::WrongHost(id))
    );
    let mut link = rendezvous.attach_agent(id, "host-a").await.unwrap();
    assert_eq!(
        rendezvous.attach_agent(id, "host-a").await.err(),
        Some(HubError::AlreadyAttached(id))
    );

    // Input typed before the host came, then live, in order.
    assert_eq!(
        next_input(&mut link.input).await,
        Some(AgentInput::Data(b"typed early\r".to_vec()))
    );
    session
        .input(ClientFrame::Resize {
            cols: 120,
            rows: 40,
        })
        .unwrap();
    session.input(ClientFrame::Input(b"ls\r".to_vec())).unwrap();
    assert_eq!(
        next_input(&mut link.input).await,
        Some(AgentInput::Resize {
            cols: 120,
            rows: 40
        })
    );
    assert_eq!(
        next_input(&mut link.input).await,
        Some(AgentInput::Data(b"ls\r".to_vec()))
    );

    // Output arrives whole and in order, even larger than one frame.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    link.end.output(b"hello ").await;
    link.end.output(&big).await;
    let mut expected = b"hello ".to_vec();
    expected.extend(&big);
    eventually("all output arrived", || {
        session.end_offset() == expected.len() as u64
    })
    .await;
    match session.read(0) {
        Read::Replay(Replay::Bytes { offset, data }) => {
            assert_eq!(offset, 0);
            assert!(data == expected, "output differs");
        }
        other => panic!("{other:?}"),
    }

    // Heartbeats keep a quiet session alive past the silence limit.
    tokio::time::sleep(config().silence_limit * 2).await;
    assert_eq!(session.ended(), None);

    // The shell's exit ends the session with its code; the host's input
    // ends with it.
    link.end.finish(Some(3), "the shell exited").await;
    eventually("the session ended", || session.ended().is_some()).await;
    assert_eq!(
        session.ended(),
        Some(Ended {
            code: Some(3),
            reason: "the shell exited".into()
        })
    );
    assert!(matches!(
        next_input(&mut link.input).await,
        None | Some(AgentInput::Close)
    ));
    assert_eq!(
        rendezvous.attach_agent(id, "host-a").await.err(),
        Some(HubError::Ended {
            session: id,
            reason: "the shell exited".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_that_goes_silent_ends_the_session() {
    let Some(url) = hood_testkit::nats_url("terminal relay") else {
        return;
    };
    let (hub, gateway, _serving) = two_sides(&url).await;
    let session = hub.open(info("host-a"));
    let link = gateway
        .rendezvous(None)
        .attach_agent(session.info().id, "host-a")
        .await
        .unwrap();
    // The gateway's end goes without a word: its heartbeats stop.
    drop(link);
    eventually("the session ended", || session.ended().is_some()).await;
    let ended = session.ended().unwrap();
    assert!(ended.reason.contains("silent"), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_that_dies_closes_the_hosts_shell() {
    let Some(url) = hood_testkit::nats_url("terminal relay") else {
        return;
    };
    let prefix = prefix();
    // The API "process": its own runtime, dropped whole to kill it.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let api_thread = {
        let (url, prefix) = (url.clone(), prefix.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let hub = Arc::new(TerminalHub::new(HubConfig::default()));
            let session = runtime.block_on(async {
                let api = TerminalRelay::connect(&url, &prefix, config())
                    .await
                    .unwrap();
                let _detached = api.serve_sessions(hub.clone()).await.unwrap();
                hub.open(info("host-a"))
            });
            opened_tx.send(session.info().id).unwrap();
            kill_rx.recv().unwrap();
            runtime.shutdown_background();
        })
    };
    let id = opened_rx.recv().unwrap();
    let gateway = TerminalRelay::connect(&url, &prefix, config())
        .await
        .unwrap();
    let mut link = gateway
        .rendezvous(None)
        .attach_agent(id, "host-a")
        .await
        .unwrap();
    // Alive while the API is.
    tokio::time::sleep(config().silence_limit * 2).await;
    assert!(link.input.try_recv().is_err(), "nothing yet");
    kill_tx.send(()).unwrap();
    api_thread.join().unwrap();
    assert_eq!(next_input(&mut link.input).await, Some(AgentInput::Close));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_beside_the_api_joins_its_own_sessions_without_nats_traffic() {
    let Some(url) = hood_testkit::nats_url("terminal relay") else {
        return;
    };
    let prefix = prefix();
    let relay = TerminalRelay::connect(&url, &prefix, config())
        .await
        .unwrap();
    let local = Arc::new(TerminalHub::new(HubConfig::default()));
    let elsewhere = Arc::new(TerminalHub::new(HubConfig::default()));
    let other = TerminalRelay::connect(&url, &prefix, config())
        .await
        .unwrap();
    let _serving = other.serve_sessions(elsewhere.clone()).await.unwrap();
    let rendezvous = relay.rendezvous(Some(local.clone()));
    let here = local.open(info("host-a"));
    let there = elsewhere.open(info("host-a"));
    let link_here = rendezvous
        .attach_agent(here.info().id, "host-a")
        .await
        .unwrap();
    let link_there = rendezvous
        .attach_agent(there.info().id, "host-a")
        .await
        .unwrap();
    link_here.end.output(b"local").await;
    link_there.end.output(b"remote").await;
    assert_eq!(here.end_offset(), 5, "the local hub took it at once");
    eventually("remote output arrived", || there.end_offset() == 6).await;
    assert_eq!(here.end_offset(), 5);
}
