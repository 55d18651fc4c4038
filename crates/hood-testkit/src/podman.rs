//! A real container engine per test: Podman's Docker-compatible API
//! service (`podman system service`, Debian's package, installed by
//! `scripts/test`) with a store, a run directory and a socket of its own,
//! stopped and wiped on drop. Images come from the root filesystem
//! `scripts/test` builds with `debootstrap` (no registry is reachable).
//!
//! One engine at a time per test binary: two services would fight over
//! the host's network setup, and images are large.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The environment variable naming the `podman` executable.
pub const PODMAN_ENV: &str = "HOOD_TEST_PODMAN_BIN";
/// The environment variable naming the root filesystem tarball (a
/// `debootstrap --variant=minbase --include=busybox` of Debian bookworm).
pub const ROOTFS_ENV: &str = "HOOD_TEST_ROOTFS_TAR";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Podman {
    bin: PathBuf,
    dir: tempfile::TempDir,
    service: Child,
    _turn: MutexGuard<'static, ()>,
}

impl Podman {
    /// Starts a service, or prints a loud skip (a failure under CI) when
    /// `HOOD_TEST_PODMAN_BIN` is not set.
    pub fn start(test: &str) -> Option<Self> {
        let bin = crate::required_file(PODMAN_ENV, test)?;
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::Builder::new()
            .prefix("hood-podman-")
            .tempdir_in("/var/tmp")
            .expect("a directory for the engine");
        // This sandbox lets no process raise its limits: containers get the
        // open-files limit the tests have, and fewer processes than it.
        let nofile = hard_limit("Max open files").unwrap_or(1024);
        std::fs::write(
            dir.path().join("containers.conf"),
            format!("[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=4096:4096\"]\n"),
        )
        .expect("writing containers.conf");
        let mut command = Command::new(&bin);
        command
            .args(global_args(dir.path()))
            .args(["system", "service", "--time=0"])
            .arg(format!(
                "unix://{}",
                dir.path().join("podman.sock").display()
            ))
            .env("CONTAINERS_CONF", dir.path().join("containers.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("service.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        let service = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let podman = Self {
            bin,
            dir,
            service,
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(podman.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "podman system service did not listen on {}",
                podman.socket().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(podman)
    }

    /// The engine's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    /// The `podman` CLI on this engine's store (to check what the API did).
    pub fn cli(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(global_args(self.dir.path()))
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        c
    }

    /// Runs the CLI with `args`; its stdout, or a panic with its stderr.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cli().args(args).output().expect("running podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Names of every container on the engine.
    pub fn containers(&self) -> Vec<String> {
        self.names(&["ps", "-a", "--format", "{{.Names}}"])
    }

    /// Names of the running containers.
    pub fn running_containers(&self) -> Vec<String> {
        self.names(&["ps", "--format", "{{.Names}}"])
    }

    fn names(&self, args: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = self
            .run(args)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// Makes `image` from the test root filesystem with the CLI.
    pub fn import_rootfs(&self, rootfs: &Path, image: &str) {
        self.run(&["import", &rootfs.display().to_string(), image]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers first: their mounts live in the store.
        let _ = self
            .cli()
            .args(["rm", "--all", "--force", "--time", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = self
            .cli()
            .args(["system", "reset", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The store, run directory and settings of one test's engine.
fn global_args(dir: &Path) -> Vec<String> {
    vec![
        format!("--root={}", dir.join("root").display()),
        format!("--runroot={}", dir.join("run").display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
        // No systemd here.
        "--cgroup-manager=cgroupfs".into(),
        "--events-backend=file".into(),
    ]
}

/// This process's hard limit named `name` in `/proc/self/limits`.
fn hard_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().nth(1)?.parse().ok()
}

/// The root filesystem tarball, or a loud skip (a failure under CI).
pub fn rootfs_tarball(test: &str) -> Option<PathBuf> {
    crate::required_file(ROOTFS_ENV, test)
}
