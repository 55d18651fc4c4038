#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `local` provider with a fake agent: a real shell script that records
//! how it was started and then holds a process tree, including children that
//! left its process group, lost their parent, or cleared their environment.
//!
//! Each test's guard SIGKILLs whatever still carries its root (environment
//! marker, working directory or command line) and removes any network
//! namespace it recorded, pass or fail.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hood_domain::HostId;
use hood_provider::{
    CreateHostRequest, EnrollmentInfo, HostProvider, HostResources, LocalProvider,
    LocalProviderConfig, NetnsConfig, ProviderError, ProviderHostState, ProviderRegistry,
    AGENT_ENV_ALLOWLIST, SANDBOX_ENV,
};
use hood_runtime::proc;

const TOKEN: &str = "enroll-TOKEN-0f3c9a";
const CA: &str = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n";

const FAKE_AGENT: &str = r#"#!/bin/sh
# Fake agent: records how it was started, then holds a process tree.
argv="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data="$2"; shift ;;
  esac
  shift
done
printf '%s\n' "$argv" > "$data/argv"
env > "$data/env"
echo $$ > "$data/agent.pid"
sleep 1000 & echo $! > "$data/child.pid"
setsid sleep 1000 & echo $! > "$data/escaped.pid"
(setsid sleep 1000 & echo $! > "$data/orphan.pid")
env -i setsid sleep 1000 & echo $! > "$data/noenv.pid"
echo "fake agent up"
echo ready > "$data/ready"
wait
"#;

struct Env {
    root: PathBuf,
    agent: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let agent = root.join("fake-agent.sh");
        fs::write(&agent, FAKE_AGENT).unwrap();
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            root,
            agent,
            _dir: dir,
        }
    }

    fn config(&self) -> LocalProviderConfig {
        let mut c = LocalProviderConfig::new(self.root.join("provider")).unwrap();
        c.agent_command = vec![self.agent.clone().into_os_string()];
        c.agent_env.insert("HOOD_TEST_EXTRA".into(), "1".into());
        c.stop_grace = Duration::from_secs(2);
        c
    }

    async fn provider(&self) -> LocalProvider {
        LocalProvider::new(self.config()).await.unwrap()
    }

    fn processes(&self) -> Vec<i32> {
        under(&self.root)
    }
}

fn under(root: &Path) -> Vec<i32> {
    let r = root.to_string_lossy().into_owned();
    let mut v = proc::processes_with_env(SANDBOX_ENV, |x| x.starts_with(&r));
    v.extend(proc::processes_referencing(root));
    v.sort_unstable();
    v.dedup();
    v
}

impl Drop for Env {
    fn drop(&mut self) {
        let root = self.root.clone();
        proc::kill_all_sync(|| under(&root));
        // Namespaces recorded by any host of this test.
        let hosts = self.root.join("provider/hosts");
        for e in fs::read_dir(hosts).into_iter().flatten().flatten() {
            let Ok(text) = fs::read_to_string(e.path().join("host.json")) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let (Some(name), Some(veth)) = (
                v["netns"]["name"].as_str(),
                v["netns"]["veth_host"].as_str(),
            ) {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", veth])
                    .output();
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", name])
                    .output();
            }
        }
    }
}

fn new_id() -> HostId {
    HostId::from_uuid(uuid::Uuid::new_v4())
}

fn req(id: HostId, gateway: &str) -> CreateHostRequest {
    CreateHostRequest {
        host_id: id,
        region: "local-1".into(),
        resources: HostResources {
            cpu: 2,
            memory_gb: 4,
            disk_gb: 20,
        },
        enrollment: EnrollmentInfo {
            gateway_url: gateway.into(),
            token: TOKEN.into(),
            ca_pem: CA.into(),
        },
    }
}

fn alive(pid: i32) -> bool {
    proc::read_stat(pid).is_some_and(|s| s.is_live())
}

/// The fake agent's recorded pids, once it reports ready.
struct Tree {
    agent: i32,
    child: i32,
    escaped: i32,
    orphan: i32,
    noenv: i32,
}

impl Tree {
    fn all(&self) -> [i32; 5] {
        [
            self.agent,
            self.child,
            self.escaped,
            self.orphan,
            self.noenv,
        ]
    }
}

async fn wait_ready(p: &LocalProvider, id: HostId) -> Tree {
    let data = p.sandbox_dir(id).join("agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data.join("ready").exists() {
        assert!(Instant::now() < deadline, "fake agent never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = |f: &str| -> i32 {
        fs::read_to_string(data.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    Tree {
        agent: pid("agent.pid"),
        child: pid("child.pid"),
        escaped: pid("escaped.pid"),
        orphan: pid("orphan.pid"),
        noenv: pid("noenv.pid"),
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_idempotent_and_delete_kills_the_whole_tree() {
    let env = Env::new();
    let p = env.provider().await;
    let id = new_id();
    let h = p
        .create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    assert_eq!(h.host_id, id);
    assert_eq!(h.provider, "local");
    assert_eq!(h.region, "local-1");
    assert_eq!(h.address, None);
    let sandbox = p.sandbox_dir(id);
    assert_eq!(h.provider_ref, sandbox.to_string_lossy());

    let tree = wait_ready(&p, id).await;
    for pid in tree.all() {
        assert!(alive(pid), "{pid} should run");
    }
    // The tree really escaped in every way the provider must handle.
    let agent_pgid = proc::read_stat(tree.agent).unwrap().pgrp;
    assert_eq!(agent_pgid, tree.agent, "agent leads its own group");
    eventually("setsid", || {
        proc::read_stat(tree.escaped).is_some_and(|s| s.pgrp == tree.escaped)
            && proc::read_stat(tree.orphan).is_some_and(|s| s.pgrp == tree.orphan)
    })
    .await;
    assert_ne!(proc::read_stat(tree.orphan).unwrap().ppid, tree.agent);
    assert_ne!(proc::read_stat(tree.orphan).unwrap().pgrp, agent_pgid);

    // Enrollment material: token only in a 0600 file.
    let agent_dir = sandbox.join("agent");
    let tok = agent_dir.join("enroll.token");
    assert_eq!(fs::read_to_string(&tok).unwrap(), TOKEN);
    assert_eq!(
        fs::metadata(&tok).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read_to_string(agent_dir.join("ca.pem")).unwrap(), CA);
    let argv = fs::read_to_string(agent_dir.join("argv")).unwrap();
    assert_eq!(
        argv.trim(),
        format!(
            "agent --data-dir {d} --gateway https://127.0.0.1:9090 --ca-file {d}/ca.pem --enrollment-token-file {d}/enroll.token --address 127.0.0.1",
            d = agent_dir.display()
        )
    );
    let cmdline = fs::read(format!("/proc/{}/cmdline", tree.agent)).unwrap();
    for (what, text) in [
        ("argv", argv.clone()),
        ("cmdline", String::from_utf8_lossy(&cmdline).into_owned()),
        (
            "host.json",
            fs::read_to_string(sandbox.join("host.json")).unwrap(),
        ),
        (
            "agent.log",
            fs::read_to_string(sandbox.join("agent.log")).unwrap(),
        ),
    ] {
        assert!(!text.contains(TOKEN), "token leaked into {what}");
    }
    assert!(fs::read_to_string(sandbox.join("agent.log"))
        .unwrap()
        .contains("fake agent up"));
    // Only allowlisted variables (plus the shell's own) reach the agent.
    let keys: BTreeSet<String> = fs::read_to_string(agent_dir.join("env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    assert!(keys.contains(SANDBOX_ENV) && keys.contains("HOOD_TEST_EXTRA"));
    for k in &keys {
        assert!(
            AGENT_ENV_ALLOWLIST.contains(&k.as_str())
                || [
                    SANDBOX_ENV,
                    "HOOD_TEST_EXTRA",
                    "PWD",
                    "OLDPWD",
                    "SHLVL",
                    "_"
                ]
                .contains(&k.as_str()),
            "unexpected variable {k} in the agent's environment"
        );
    }

    // Creating again returns the same host and does not start another agent.
    let again = p
        .create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    assert_eq!(again, h);
    let st = p.host_status(id).await.unwrap().unwrap();
    assert_eq!(st.state, ProviderHostState::Running);
    assert_eq!(st.pid, Some(u32::try_from(tree.agent).unwrap()));

    p.delete_host(id).await.unwrap();
    for pid in tree.all() {
        assert!(!alive(pid), "{pid} survived delete_host");
    }
    assert!(!sandbox.exists());
    assert!(env.processes().is_empty());
    assert_eq!(p.host_status(id).await.unwrap(), None);
    p.delete_host(id).await.unwrap(); // idempotent
    assert!(p.list_hosts().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_provider_instance_finds_and_deletes_hosts_of_the_previous_one() {
    let env = Env::new();
    let (a, b) = (new_id(), new_id());
    let (tree_a, tree_b) = {
        let p1 = env.provider().await;
        p1.create_host(req(a, "https://127.0.0.1:9090"))
            .await
            .unwrap();
        p1.create_host(req(b, "https://127.0.0.1:9090"))
            .await
            .unwrap();
        (wait_ready(&p1, a).await, wait_ready(&p1, b).await)
    }; // p1 dropped: the "control plane" restarts, hosts keep running

    let p2 = env.provider().await;
    let listed: BTreeSet<HostId> = p2
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host_id)
        .collect();
    assert_eq!(listed, BTreeSet::from([a, b]));
    // Orphan detection: the store only knows `a`.
    let known = BTreeSet::from([a]);
    let orphans: Vec<HostId> = listed.difference(&known).copied().collect();
    assert_eq!(orphans, vec![b]);

    let st = p2.host_status(a).await.unwrap().unwrap();
    assert_eq!(st.state, ProviderHostState::Running);
    assert_eq!(st.pid, Some(u32::try_from(tree_a.agent).unwrap()));

    p2.delete_host(b).await.unwrap();
    for pid in tree_b.all() {
        assert!(!alive(pid), "{pid} of the orphan survived");
    }
    for pid in tree_a.all() {
        assert!(alive(pid), "deleting one host must not touch another");
    }
    p2.delete_host(a).await.unwrap();
    for pid in tree_a.all() {
        assert!(!alive(pid));
    }
    assert!(p2.list_hosts().await.unwrap().is_empty());
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_is_reported_not_resurrected_and_its_leftovers_are_deleted() {
    let env = Env::new();
    let p = env.provider().await;
    let id = new_id();
    p.create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    let tree = wait_ready(&p, id).await;
    proc::signal_pids(&[tree.agent], nix::sys::signal::Signal::SIGKILL);

    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = p.host_status(id).await.unwrap().unwrap();
        if st.last_exit.is_some() {
            break st;
        }
        assert!(Instant::now() < deadline, "agent death not seen: {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st.state, ProviderHostState::Stopped);
    assert_eq!(st.last_exit.unwrap().signal, Some(9));
    assert_eq!(st.pid, None);
    // A retried create returns the host as it is: a dead host is a fact for
    // the control plane to act on, not something to paper over.
    p.create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    assert_eq!(
        p.host_status(id).await.unwrap().unwrap().state,
        ProviderHostState::Stopped
    );
    // The agent's children outlived it; delete still finds them all.
    assert!(alive(tree.child));
    p.delete_host(id).await.unwrap();
    for pid in tree.all() {
        assert!(!alive(pid), "{pid} survived");
    }
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_invalid_creates_leave_nothing_behind() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.agent_command = vec!["/nonexistent/hood".into()];
    let p = LocalProvider::new(cfg).await.unwrap();
    let id = new_id();
    let err = p
        .create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/hood"), "{err}");
    assert!(!err.to_string().contains(TOKEN));
    assert!(!p.sandbox_dir(id).exists());
    assert!(p.list_hosts().await.unwrap().is_empty());

    let p = env.provider().await;
    let mut r = req(id, "https://127.0.0.1:9090");
    r.enrollment.token.clear();
    assert!(matches!(
        p.create_host(r).await,
        Err(ProviderError::InvalidRequest { .. })
    ));
    assert!(matches!(
        p.create_host(req(id, "not a url")).await,
        Err(ProviderError::InvalidRequest { .. })
    ));
    assert!(!p.sandbox_dir(id).exists());
    assert_eq!(p.host_status(id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_plugs_providers_by_name() {
    let env = Env::new();
    let local = Arc::new(env.provider().await);
    let mut reg = ProviderRegistry::new();
    reg.register(local.clone()).unwrap();
    assert!(matches!(
        reg.register(local.clone()),
        Err(ProviderError::DuplicateProvider(_))
    ));
    assert_eq!(reg.names(), vec!["local".to_owned()]);
    assert!(reg.get("hetzner").is_none());

    let p = reg.get("local").unwrap();
    let id = new_id();
    p.create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    // No namespace configured: partition is refused, clearly.
    assert!(matches!(
        p.partition(id).await,
        Err(ProviderError::Unsupported { .. })
    ));
    assert!(matches!(
        p.partition(new_id()).await,
        Err(ProviderError::NotFound(_))
    ));
    p.delete_host(id).await.unwrap();
    assert!(env.processes().is_empty());
    // The token never shows in debug output.
    assert!(!format!("{:?}", req(id, "https://x:1")).contains(TOKEN));
}

fn netns_available() -> bool {
    nix::unistd::geteuid().is_root()
        && std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Connects from inside namespace `ns` to `addr:port` (bounded by `timeout`).
fn probe(ns: &str, addr: Ipv4Addr, port: u16) -> bool {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "timeout",
            "2",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{addr}/{port}"),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_namespace_gives_an_address_and_can_be_partitioned() {
    if !netns_available() {
        eprintln!("SKIPPED: network namespaces need root and iproute2");
        return;
    }
    let env = Env::new();
    let mut cfg = env.config();
    cfg.netns = Some(NetnsConfig::default());
    let p = LocalProvider::new(cfg).await.unwrap();
    let id = new_id();
    let h = p
        .create_host(req(id, "https://127.0.0.1:9090"))
        .await
        .unwrap();
    let Some(IpAddr::V4(ns_addr)) = h.address else {
        panic!("a namespaced host has an address: {h:?}");
    };
    let host_addr = Ipv4Addr::from(u32::from(ns_addr) - 1);
    assert_eq!(ns_addr.octets()[..2], [10, 213]);
    let tree = wait_ready(&p, id).await;

    let rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(p.sandbox_dir(id).join("host.json")).unwrap())
            .unwrap();
    let ns = rec["netns"]["name"].as_str().unwrap().to_owned();
    let veth = rec["netns"]["veth_host"].as_str().unwrap().to_owned();

    // The agent lives in the host's namespace, not ours.
    let ns_ino = fs::metadata(format!("/run/netns/{ns}")).unwrap().ino();
    let agent_ino = fs::metadata(format!("/proc/{}/ns/net", tree.agent))
        .unwrap()
        .ino();
    let our_ino = fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_eq!(agent_ino, ns_ino);
    assert_ne!(agent_ino, our_ino);
    // It was told to dial the gateway through the link, not its own loopback.
    let argv = fs::read_to_string(p.sandbox_dir(id).join("agent/argv")).unwrap();
    assert!(
        argv.contains(&format!("--gateway https://{host_addr}:9090")),
        "{argv}"
    );
    // Its nodes listen on the namespace's own address, not on every interface.
    assert!(argv.contains(&format!("--address {ns_addr}")), "{argv}");
    // No default route inside: nothing can leave the machine.
    let routes = std::process::Command::new("ip")
        .args(["-n", &ns, "route"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("default"));

    // Reachability of the root side, then a partition, then healing.
    let listener = std::net::TcpListener::bind((host_addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    assert!(
        probe(&ns, host_addr, port),
        "host cannot reach the control plane"
    );
    p.partition(id).await.unwrap();
    assert!(p.host_status(id).await.unwrap().unwrap().partitioned);
    assert!(
        !probe(&ns, host_addr, port),
        "partitioned host still connects"
    );
    p.heal(id).await.unwrap();
    assert!(!p.host_status(id).await.unwrap().unwrap().partitioned);
    assert!(probe(&ns, host_addr, port), "healed host cannot connect");
    drop(listener);

    p.delete_host(id).await.unwrap();
    for pid in tree.all() {
        assert!(!alive(pid), "{pid} survived");
    }
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&ns));
    let link = std::process::Command::new("ip")
        .args(["link", "show", &veth])
        .output()
        .unwrap();
    assert!(!link.status.success(), "veth survived delete");
    assert!(!p.sandbox_dir(id).exists());
    assert!(env.processes().is_empty());
}
