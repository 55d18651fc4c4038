//! Allocations that name an image, on a real engine (Podman's
//! Docker-compatible service): ports kept across a redelivered start,
//! states as the control plane's reaper reads them, logs, removal, a
//! missing image refused, an image loaded from an archive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_domain::workload::{AllocationTask, ContainerRestart, ContainerTask};
use hood_domain::AllocationId;
use hood_testkit::podman::{rootfs_tarball, Podman};
use hood_workloads::containers::ContainerAllocations;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const IMAGE: &str = "hood/alloc-test:1";

fn task(command: &[&str]) -> AllocationTask {
    AllocationTask {
        allocation_id: AllocationId::from_uuid(uuid::Uuid::now_v7()),
        cores: vec![0],
        memory_mib: 128,
        gpus: vec![],
        mig: vec![],
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        lease_until_ms: None,
        container: None,
    }
}

fn container(ports: &[u16]) -> ContainerTask {
    ContainerTask {
        image: IMAGE.into(),
        archive: None,
        env: [("GREETING".to_owned(), "hi".to_owned())].into(),
        ports: ports.to_vec(),
        restart: ContainerRestart::Never,
    }
}

async fn state_of(c: &ContainerAllocations, workload: &str) -> Option<&'static str> {
    c.reports()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.workload_id == workload)
        .map(|r| r.state)
}

async fn wait_for_state(c: &ContainerAllocations, workload: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = state_of(c, workload).await;
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{workload} is {now:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocation_runs_as_a_container_and_reports_like_a_sandbox() {
    let test = "an_allocation_runs_as_a_container";
    let Some(podman) = Podman::start(test) else {
        return;
    };
    let Some(rootfs) = rootfs_tarball(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = ContainerAllocations::connect(
        &podman.socket(),
        dir.path().join("containers"),
        IpAddr::from([127, 0, 0, 1]),
    )
    .await
    .unwrap();

    // No image yet, no archive: refused with the reason.
    let web = task(&["sh", "-c", "echo started-$GREETING; exec sleep 600"]);
    let e = c.start(&web, &container(&[8000])).await.unwrap_err();
    assert!(e.0.contains("not on this host"), "{}", e.0);
    assert!(podman.containers().is_empty());

    podman.import_rootfs(&rootfs, IMAGE);
    let started = c.start(&web, &container(&[8000])).await.unwrap();
    let workload = web.workload_id();
    assert_eq!(started.workload_id, workload);
    assert_eq!(started.hostname, web.hostname());
    let host_port = started.ports[&8000];
    assert!(host_port > 0);
    let id = podman.run(&["inspect", "--format", "{{.Id}}", &workload]);
    // A redelivered start: the same container, the same port.
    let again = c.start(&web, &container(&[8000])).await.unwrap();
    assert_eq!(again.ports, started.ports);
    assert_eq!(
        podman.run(&["inspect", "--format", "{{.Id}}", &workload]),
        id
    );
    // Published where the agent said, with the allocation's limits.
    let published = podman.run(&["port", &workload]);
    assert!(
        published.contains(&format!("127.0.0.1:{host_port}")),
        "{published}"
    );
    assert_eq!(
        podman
            .run(&[
                "inspect",
                "--format",
                "{{.HostConfig.CpusetCpus}} {{.HostConfig.Memory}} {{.Config.Hostname}}",
                &workload
            ])
            .trim(),
        format!("0 {} {}", 128 << 20, web.hostname())
    );
    wait_for_state(&c, &workload, "running").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .tail_logs(&workload, 10)
        .await
        .unwrap()
        .contains(&"started-hi".to_owned())
    {
        assert!(Instant::now() < deadline, "no log line");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Commands that end: stopped (code 0) or failed, as the reaper reads.
    let ok = task(&["true"]);
    c.start(&ok, &container(&[])).await.unwrap();
    wait_for_state(&c, &ok.workload_id(), "stopped").await;
    let bad = task(&["sh", "-c", "exit 2"]);
    c.start(&bad, &container(&[])).await.unwrap();
    wait_for_state(&c, &bad.workload_id(), "failed").await;

    // A lease that runs out stops it; release removes it and its ports.
    c.stop(&workload).await.unwrap();
    wait_for_state(&c, &workload, "failed").await;
    for w in [&workload, &ok.workload_id(), &bad.workload_id()] {
        c.remove(w).await.unwrap();
        c.remove(w).await.unwrap();
        assert!(!c.has(w).await.unwrap());
    }
    assert!(c.reports().await.unwrap().is_empty());
    assert!(podman.containers().is_empty());
    assert!(!dir
        .path()
        .join("containers")
        .join(format!("{workload}.ports.json"))
        .exists());

    // GPUs are refused rather than run without them.
    let mut gpu = task(&["true"]);
    gpu.gpus = vec![0];
    assert!(c.start(&gpu, &container(&[])).await.is_err());

    // An image from an archive.
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
    let wanted = container(&[]);
    assert!(c.missing_image(&wanted).await.unwrap());
    c.load_image(&wanted, &archive).await.unwrap();
    assert!(!c.missing_image(&wanted).await.unwrap());
    // An archive that does not hold the image asked for.
    let mut other = container(&[]);
    other.image = "hood/not-in-it:1".into();
    let e = c.load_image(&other, &archive).await.unwrap_err();
    assert!(
        e.0.contains("does not hold image hood/not-in-it:1"),
        "{}",
        e.0
    );
}
