//! A shell on a PTY inside an allocation's sandbox, joined to a terminal
//! session through the gateway (`open_terminal`). The shell enters the
//! sandbox's namespaces (`nsenter` into its PID 1), its cgroups and its
//! cores, with the sandbox's environment, so it sees exactly what the
//! allocation sees: its host name, its processes, its CPUs. A container's
//! shell is an interactive exec on the host's engine instead.

use crate::sandbox;
use hood_agent::{CommandContext, CommandError};
use hood_agent_proto::v1::terminal_down::Body as Down;
use hood_agent_proto::v1::terminal_up::Body as Up;
use hood_agent_proto::v1::{TerminalDown, TerminalExit, TerminalUp};
use hood_containers::ContainerEngine;
use hood_domain::workload::TerminalTask;
use hood_runtime::{WorkloadId, WorkloadRuntime, WorkloadState};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Streaming;

/// When the sandbox's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Output is sent in pieces of at most this.
const READ_CHUNK: usize = 16 * 1024;

fn err(context: &str, e: impl std::fmt::Display) -> CommandError {
    CommandError(format!("{context}: {e}"))
}

/// The sandbox's PID 1: the child `unshare --fork` made (the workload's
/// own pid is `unshare`, outside the namespaces).
fn sandbox_init(workload_pid: u32) -> Result<i32, CommandError> {
    let pid = i32::try_from(workload_pid).map_err(|e| err("sandbox pid", e))?;
    hood_runtime::proc::children(pid)
        .first()
        .copied()
        .ok_or_else(|| CommandError("the sandbox has no init process yet".into()))
}

/// Starts the shell and its stream; returns once both are up. The session
/// then runs on its own until the shell exits or the control plane closes
/// it.
pub async fn open(
    runtime: &Arc<dyn WorkloadRuntime>,
    task: &TerminalTask,
    ctx: &CommandContext,
) -> Result<serde_json::Value, CommandError> {
    if task.cores.is_empty() {
        return Err(CommandError(
            "a terminal needs the allocation's cores".into(),
        ));
    }
    let workload = hood_domain::workload::allocation_workload_id(task.allocation_id);
    let id = WorkloadId::new(workload.clone()).map_err(|e| err("workload id", e))?;
    let status = runtime
        .status(&id)
        .await
        .map_err(|e| err("sandbox status", e))?
        .filter(|s| s.state == WorkloadState::Running)
        .ok_or_else(|| {
            CommandError(format!(
                "allocation {} is not running here",
                task.allocation_id
            ))
        })?;
    let init = sandbox_init(status.pid.unwrap_or(0))?;
    let cores: Vec<String> = task.cores.iter().map(u32::to_string).collect();
    let procs = sandbox::existing_cgroup_procs(sandbox::cgroup_root(), &workload);

    let (pty, pts) = pty_process::open().map_err(|e| err("opening a PTY", e))?;
    pty.resize(pty_process::Size::new(task.rows, task.cols))
        .map_err(|e| err("sizing the PTY", e))?;
    let init_arg = init.to_string();
    let cores_arg = cores.join(",");
    let program: Vec<&str> = if task.command.is_empty() {
        vec!["/bin/sh", "-i"]
    } else {
        task.command.iter().map(String::as_str).collect()
    };
    let command = pty_process::Command::new("/bin/sh")
        .args([
            "-c",
            sandbox::ENTER_CGROUPS,
            "hood-terminal",
            "taskset",
            "--cpu-list",
            cores_arg.as_str(),
            "nsenter",
            "--target",
            init_arg.as_str(),
            "--pid",
            "--mount",
            "--net",
            "--uts",
            "--ipc",
            "--",
            // A session of its own inside the namespace, the PTY its
            // controlling terminal: a shell whose terminal's process group
            // lived outside would fail to restore it on exit.
            "setsid",
            "--ctty",
            "--wait",
        ])
        .args(program)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        // The sandbox's own environment (its GPUs, its id), then the
        // terminal's.
        .envs(hood_runtime::proc::environ(init).unwrap_or_default())
        .env("TERM", "xterm-256color")
        .env("HOME", "/root")
        .env(
            "HOOD_CGROUP_PROCS",
            procs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .current_dir("/")
        .kill_on_drop(true);
    let mut child = command
        .spawn(pts)
        .map_err(|e| err("starting the shell", e))?;
    let shell_pid = child.id();
    let (up, mut down) = match ctx.agent.open_terminal(task.session_id).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = child.start_kill();
            return Err(err("dialing the gateway's terminal stream", e));
        }
    };
    tracing::info!(allocation = %task.allocation_id, session = %task.session_id,
        sandbox_init = init, shell_pid = ?shell_pid, "terminal opened");
    let session = task.session_id;
    tokio::spawn(async move {
        let (mut reader, mut writer) = pty.into_split();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut closed = None;
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    // EIO: every holder of the PTY's other side is gone.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let out = TerminalUp { body: Some(Up::Output(buf[..n].to_vec())) };
                        if up.send(out).await.is_err() {
                            closed = Some("the gateway's stream ended");
                            break;
                        }
                    }
                },
                message = down.message() => match message {
                    Ok(Some(m)) => match m.body {
                        Some(Down::Input(data)) => {
                            let Ok(()) = writer.write_all(&data).await else {
                                break;
                            };
                        }
                        Some(Down::Resize(size)) => {
                            let rows = u16::try_from(size.rows).unwrap_or(u16::MAX);
                            let cols = u16::try_from(size.cols).unwrap_or(u16::MAX);
                            if let Err(e) = writer.resize(pty_process::Size::new(rows, cols)) {
                                tracing::warn!(%session, error = %e, "could not resize a terminal");
                            }
                        }
                        Some(Down::Close(_)) => {
                            closed = Some("closed by the control plane");
                            break;
                        }
                        None => {}
                    },
                    Ok(None) | Err(_) => {
                        closed = Some("the gateway's stream ended");
                        break;
                    }
                },
            }
        }
        // Closing our side hangs the shell up (SIGHUP to its session).
        drop(reader);
        drop(writer);
        let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        };
        let code = status.and_then(|s| s.code());
        finish(
            session,
            up,
            down,
            code,
            closed.unwrap_or("the shell exited"),
        )
        .await;
    });
    Ok(serde_json::json!({
        "session_id": task.session_id,
        "sandbox_init_pid": init,
        "shell_pid": shell_pid,
    }))
}

/// Reports the shell's end to the gateway, then waits for it to close its
/// side: dropping the call first would reset it before the exit arrives.
async fn finish(
    session: uuid::Uuid,
    up: mpsc::Sender<TerminalUp>,
    mut down: Streaming<TerminalDown>,
    code: Option<i32>,
    reason: &str,
) {
    tracing::info!(%session, code = ?code, reason, "terminal closed");
    let _ = up
        .send(TerminalUp {
            body: Some(Up::Exit(TerminalExit {
                code,
                reason: reason.to_owned(),
            })),
        })
        .await;
    drop(up);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = down.message().await {}
    })
    .await;
}

/// A shell inside an allocation's container: an interactive exec on the
/// engine (its own TTY, the container's namespaces, cgroups and
/// environment), joined to the session like a sandbox's shell.
pub async fn open_in_container(
    engine: &ContainerEngine,
    task: &TerminalTask,
    ctx: &CommandContext,
) -> Result<serde_json::Value, CommandError> {
    let workload = hood_domain::workload::allocation_workload_id(task.allocation_id);
    let running = engine
        .state(&workload)
        .await
        .map_err(|e| err("container status", e))?
        .is_some_and(|s| s.state == hood_containers::ContainerState::Running);
    if !running {
        return Err(CommandError(format!(
            "allocation {} is not running here",
            task.allocation_id
        )));
    }
    let env = std::collections::BTreeMap::from([
        ("TERM".to_owned(), "xterm-256color".to_owned()),
        ("HOME".to_owned(), "/root".to_owned()),
    ]);
    let shell = if task.command.is_empty() {
        vec!["/bin/sh".to_owned(), "-i".to_owned()]
    } else {
        task.command.clone()
    };
    let exec = engine
        .exec_interactive(&workload, &shell, &env, task.cols, task.rows)
        .await
        .map_err(|e| err("starting the shell", e))?;
    let (up, mut down) = ctx
        .agent
        .open_terminal(task.session_id)
        .await
        .map_err(|e| err("dialing the gateway's terminal stream", e))?;
    tracing::info!(allocation = %task.allocation_id, session = %task.session_id,
        exec = %exec.id, "container terminal opened");
    let session = task.session_id;
    let engine = engine.clone();
    let exec_id = exec.id.clone();
    let answer = serde_json::json!({
        "session_id": task.session_id,
        "exec_id": exec.id,
    });
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let hood_containers::InteractiveExec {
            mut output,
            mut input,
            ..
        } = exec;
        let mut closed = None;
        loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(bytes)) => {
                        let out = TerminalUp { body: Some(Up::Output(bytes)) };
                        if up.send(out).await.is_err() {
                            closed = Some("the gateway's stream ended");
                            break;
                        }
                    }
                    // The shell ended (or the engine dropped the stream).
                    Some(Err(_)) | None => break,
                },
                message = down.message() => match message {
                    Ok(Some(m)) => match m.body {
                        Some(Down::Input(data)) => {
                            let Ok(()) = input.write_all(&data).await else {
                                break;
                            };
                        }
                        Some(Down::Resize(size)) => {
                            let rows = u16::try_from(size.rows).unwrap_or(u16::MAX);
                            let cols = u16::try_from(size.cols).unwrap_or(u16::MAX);
                            if let Err(e) = engine.resize_exec(&exec_id, cols, rows).await {
                                tracing::warn!(%session, error = %e, "could not resize a terminal");
                            }
                        }
                        Some(Down::Close(_)) => {
                            closed = Some("closed by the control plane");
                            break;
                        }
                        None => {}
                    },
                    Ok(None) | Err(_) => {
                        closed = Some("the gateway's stream ended");
                        break;
                    }
                },
            }
        }
        // Closing the input ends an interactive shell (end of file), but
        // not a command in its foreground, which the shell waits for. A
        // terminal the control plane closed is hung up on: its process tree
        // gets SIGHUP, then SIGKILL (the engine's API has no exec kill).
        let _ = input.shutdown().await;
        drop(input);
        drop(output);
        let tree = match closed {
            Some(_) => exec_tree(&engine, &exec_id).await,
            None => Vec::new(),
        };
        hood_runtime::proc::signal_pids(&tree, nix::sys::signal::Signal::SIGHUP);
        let mut code = None;
        for _ in 0..50 {
            match engine.exec_exit_code(&exec_id).await {
                Ok(Some(c)) => {
                    code = i32::try_from(c).ok();
                    break;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => break,
            }
        }
        if code.is_none() {
            let left = exec_tree(&engine, &exec_id).await;
            hood_runtime::proc::signal_pids(&left, nix::sys::signal::Signal::SIGKILL);
        }
        finish(
            session,
            up,
            down,
            code,
            closed.unwrap_or("the shell exited"),
        )
        .await;
    });
    Ok(answer)
}

/// A running exec's process and its descendants, as this host sees them;
/// empty when it ended or the engine does not say. The engine's PID is
/// only trusted when that process lives in another PID namespace than the
/// agent (a container's): an engine that sees other PIDs than the agent
/// (the agent itself in a container) must not make it signal a stranger.
async fn exec_tree(engine: &ContainerEngine, exec_id: &str) -> Vec<i32> {
    match engine.exec_pid(exec_id).await {
        Ok(Some(pid)) => {
            let Ok(pid) = i32::try_from(pid) else {
                return Vec::new();
            };
            let namespace = |of: &str| std::fs::read_link(format!("/proc/{of}/ns/pid")).ok();
            let theirs = namespace(&pid.to_string());
            if theirs.is_none() || theirs == namespace("self") {
                tracing::warn!(exec = %exec_id, pid, "a terminal's process is not a container's here; left to the engine");
                return Vec::new();
            }
            let mut tree = hood_runtime::proc::descendants(pid);
            tree.push(pid);
            tree
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(exec = %exec_id, error = %e, "could not find a terminal's processes");
            Vec::new()
        }
    }
}
