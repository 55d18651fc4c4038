//! `ContainerEngine` against a real engine: Podman's Docker-compatible
//! API service, with an image made here from a debootstrap root filesystem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_containers::{
    ContainerEngine, ContainerSpec, ContainerState, LogLine, RestartMode, MANAGED_LABEL,
};
use hood_testkit::podman::{rootfs_tarball, Podman};
use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const IMAGE: &str = "hood/test:1";

async fn engine_with_image(test: &str) -> Option<(Podman, ContainerEngine)> {
    let podman = Podman::start(test)?;
    let rootfs = rootfs_tarball(test)?;
    let engine = ContainerEngine::connect(&podman.socket()).await.unwrap();
    assert!(!engine.has_image(IMAGE).await.unwrap());
    engine.import_rootfs(&rootfs, IMAGE).await.unwrap();
    assert!(engine.has_image(IMAGE).await.unwrap());
    Some((podman, engine))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spec(name: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: IMAGE.into(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        hostname: Some(format!("{name}-host")),
        cores: vec![0],
        memory_mib: 128,
        ports: BTreeMap::new(),
        publish_ip: IpAddr::from([127, 0, 0, 1]),
        restart: RestartMode::Never,
        labels: BTreeMap::new(),
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_with_its_limits_ports_and_logs_and_an_equal_spec_leaves_it_alone() {
    let test = "a_container_runs_with_its_limits";
    let Some((podman, engine)) = engine_with_image(test).await else {
        return;
    };
    let port = free_port();
    let mut web = spec(
        "hood-web",
        &[
            "sh",
            "-c",
            "echo out-$GREETING; echo err-line >&2; mkdir -p /www; hostname > /www/index.html; exec busybox httpd -f -p 8000 -h /www",
        ],
    );
    web.ports.insert(8000, port);
    let first = engine.run(&web).await.unwrap();
    assert_eq!(first.state, ContainerState::Running);
    assert_eq!(first.labels[MANAGED_LABEL], "true");

    // What the engine was told, as Podman's own CLI reports it.
    let inspected = podman.run(&[
        "inspect",
        "--format",
        "{{.HostConfig.CpusetCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.Config.Hostname}}",
        "hood-web",
    ]);
    assert_eq!(
        inspected.trim(),
        format!("0 {} {} hood-web-host", 128 << 20, 128 << 20)
    );

    // The published port answers with the container's host name.
    let mut body = String::new();
    eventually("the web server to answer", || {
        let got = http_get(port);
        if let Some(b) = &got {
            body.clone_from(b);
        }
        async move { got.is_some() }
    })
    .await;
    assert!(body.contains("hood-web-host"), "{body}");

    // Logs keep stdout and stderr apart.
    let logs = engine.logs("hood-web", 100).await.unwrap();
    assert!(
        logs.contains(&LogLine::Stdout("out-hello".into())),
        "{logs:?}"
    );
    assert!(
        logs.contains(&LogLine::Stderr("err-line".into())),
        "{logs:?}"
    );

    // An equal spec: the same container, untouched.
    let again = engine.run(&web).await.unwrap();
    assert_eq!(again.id, first.id);
    // A changed one: replaced.
    web.env.insert("GREETING".into(), "changed".into());
    let replaced = engine.run(&web).await.unwrap();
    assert_ne!(replaced.id, first.id);
    assert_eq!(podman.containers(), vec!["hood-web".to_owned()]);

    // A container that is not Hood's is neither listed nor replaced.
    podman.run(&["run", "-d", "--name", "foreign", IMAGE, "sleep", "600"]);
    let managed = engine.managed().await.unwrap();
    assert_eq!(managed.keys().collect::<Vec<_>>(), vec!["hood-web"]);
    let mut clash = spec("foreign", &["sleep", "1"]);
    clash.cores = vec![0];
    assert!(engine.run(&clash).await.is_err());
    assert!(podman.running_containers().contains(&"foreign".to_owned()));

    // Exec runs inside it.
    let out = engine
        .exec("hood-web", &["sh", "-c", "hostname; exit 4"])
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "hood-web-host");
    assert_eq!(out.code, Some(4));

    // Stopping closes the port; removing twice is fine.
    engine
        .stop("hood-web", Duration::from_secs(5))
        .await
        .unwrap();
    let stopped = engine.state("hood-web").await.unwrap().unwrap();
    assert!(
        matches!(stopped.state, ContainerState::Exited { .. }),
        "{stopped:?}"
    );
    assert!(http_get(port).is_none());
    engine.remove("hood-web").await.unwrap();
    engine.remove("hood-web").await.unwrap();
    engine
        .stop("hood-web", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(engine.state("hood-web").await.unwrap().is_none());
    assert!(engine.managed().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_restart_policy_is_the_engines_and_a_terminal_exec_is_interactive() {
    let test = "the_restart_policy_is_the_engines";
    let Some((podman, engine)) = engine_with_image(test).await else {
        return;
    };
    // Never: an ended command stays ended, with its code.
    engine
        .run(&spec("hood-once", &["sh", "-c", "exit 3"]))
        .await
        .unwrap();
    eventually("the command to end", || {
        let engine = engine.clone();
        async move {
            matches!(
                engine.state("hood-once").await.unwrap().map(|s| s.state),
                Some(ContainerState::Exited { code: 3 })
            )
        }
    })
    .await;
    // On failure: the engine restarts it (Podman counts them).
    let mut failing = spec("hood-retry", &["sh", "-c", "sleep 0.2; exit 1"]);
    failing.restart = RestartMode::OnFailure;
    engine.run(&failing).await.unwrap();
    eventually("a restart", || {
        let count = podman.run(&["inspect", "--format", "{{.RestartCount}}", "hood-retry"]);
        async move { count.trim().parse::<u32>().unwrap_or(0) >= 1 }
    })
    .await;

    // A terminal: a shell on a TTY that reads what is typed.
    engine
        .run(&spec("hood-shell", &["sleep", "600"]))
        .await
        .unwrap();
    let mut exec = engine
        .exec_interactive(
            "hood-shell",
            &["/bin/sh".to_owned()],
            &BTreeMap::from([("TERM".into(), "xterm".into())]),
            100,
            30,
        )
        .await
        .unwrap();
    exec.input
        .write_all(b"stty size; hostname; exit 7\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let read_all = async {
        use futures::StreamExt;
        while let Some(chunk) = exec.output.next().await {
            seen.extend(chunk.unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("30 100"), "{text}");
    assert!(text.contains("hood-shell-host"), "{text}");
    eventually("the exec's exit code", || {
        let (engine, id) = (engine.clone(), exec.id.clone());
        async move { engine.exec_exit_code(&id).await.unwrap() == Some(7) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_archive_saved_by_podman_loads_back() {
    let test = "an_image_archive_saved_by_podman_loads_back";
    let Some((podman, engine)) = engine_with_image(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    podman.run(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        &archive.display().to_string(),
        IMAGE,
    ]);
    podman.run(&["rmi", IMAGE]);
    assert!(!engine.has_image(IMAGE).await.unwrap());
    let said = engine.load_archive(&archive).await.unwrap();
    assert!(!said.is_empty());
    // An OCI archive carries the image's name in its index.
    assert!(engine.has_image(IMAGE).await.unwrap(), "{said:?}");
    let running = engine
        .run(&spec("hood-loaded", &["sleep", "600"]))
        .await
        .unwrap();
    assert_eq!(running.state, ContainerState::Running);
    // A missing file is an error, not a panic.
    assert!(engine
        .load_archive(&dir.path().join("missing.tar"))
        .await
        .is_err());
}

/// The body of `GET /` on a loopback port, if it answers.
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.").then_some(answer)
}
