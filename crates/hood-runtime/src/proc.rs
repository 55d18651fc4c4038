//! Linux `/proc` helpers for finding and killing whole process trees without
//! cgroups.
//!
//! Supervisors here put each child in its own process group, so one
//! `killpg` reaches everything that did not deliberately leave the group. To
//! also catch what did leave (`setsid`, daemonising double forks), children
//! carry a marker environment variable that their descendants inherit, and
//! [`processes_with_env`] finds them again. Pids are always paired with their
//! start time so that a recorded pid is never confused with a recycled one.
//!
//! Zombies count as dead everywhere: they hold no resources but a pid slot,
//! and whoever is their parent reaps them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// One line of `/proc/{pid}/stat`, reduced to what tree tracking needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// Single-letter state (`R`, `S`, `Z`, …).
    pub state: char,
    /// Start time in clock ticks after boot: with the pid, a unique identity.
    pub start_ticks: u64,
    /// CPU time in clock ticks: its own (user and system) and that of the
    /// children it reaped.
    pub cpu_ticks: u64,
}

impl ProcStat {
    /// Whether the process still runs (zombies and dead tasks do not).
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// A pid as recorded on disk: enough to find the process again after the
/// recorder restarts, and to refuse a recycled pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub pgid: i32,
    pub start_ticks: u64,
}

impl ProcessRecord {
    /// Records a process that is alive now; `None` if it already vanished.
    pub fn capture(pid: i32) -> Option<Self> {
        let st = read_stat(pid)?;
        Some(Self {
            pid,
            pgid: st.pgrp,
            start_ticks: st.start_ticks,
        })
    }

    /// True while the very process that was recorded is still running.
    pub fn is_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|st| st.is_live() && st.start_ticks == self.start_ticks)
    }
}

/// Parses `/proc/{pid}/stat`. `None` when the process is gone or unreadable.
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the *last* ')' are fixed.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
        cpu_ticks: f
            .get(11..15)?
            .iter()
            .map(|t| t.parse::<u64>().ok())
            .sum::<Option<u64>>()?,
    })
}

/// Clock ticks per second in `/proc` (`USER_HZ`: 100 on every Linux
/// architecture Hood runs on).
pub const TICKS_PER_SECOND: u64 = 100;

/// CPU time of the process tree under `root` (itself included), in clock
/// ticks: each live process's own time and what it reaped, so a child
/// that exited counts once, in its parent.
pub fn tree_cpu_ticks(root: i32) -> u64 {
    std::iter::once(root)
        .chain(descendants(root))
        .filter_map(read_stat)
        .map(|s| s.cpu_ticks)
        .sum()
}

/// Every pid currently listed in `/proc`.
pub fn all_pids() -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

fn live_stats() -> Vec<ProcStat> {
    let me = own_pid();
    all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter_map(read_stat)
        .filter(ProcStat::is_live)
        .collect()
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

/// Live members of process group `pgid` (never this process).
pub fn group_members(pgid: i32) -> Vec<i32> {
    live_stats()
        .into_iter()
        .filter(|s| s.pgrp == pgid)
        .map(|s| s.pid)
        .collect()
}

/// Live children of `parent`, oldest pid first.
pub fn children(parent: i32) -> Vec<i32> {
    let mut pids: Vec<i32> = live_stats()
        .into_iter()
        .filter(|s| s.ppid == parent)
        .map(|s| s.pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// The environment of `pid` (`None` when it cannot be read).
pub fn environ(pid: i32) -> Option<Vec<(String, String)>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter_map(|entry| {
                let text = std::str::from_utf8(entry).ok()?;
                let (k, v) = text.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

/// Live descendants of `root` by parent chain (not including `root`).
///
/// Only sees descendants whose chain is unbroken: a process whose parent
/// died was re-parented and is found by [`processes_with_env`] instead.
pub fn descendants(root: i32) -> Vec<i32> {
    let stats = live_stats();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for s in &stats {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

/// Live processes whose environment has `key` with a value accepted by
/// `matches` (never this process). Environments that cannot be read
/// (another user's processes when not root) are skipped.
pub fn processes_with_env(key: &str, matches: impl Fn(&str) -> bool) -> Vec<i32> {
    live_stats()
        .into_iter()
        .filter(|s| {
            environ(s.pid).is_some_and(|env| env.iter().any(|(k, v)| k == key && matches(v)))
        })
        .map(|s| s.pid)
        .collect()
}

/// Live processes whose working directory is `dir` or below it, or whose
/// command line mentions `dir`: the last-resort tracker for processes that
/// both left the group and cleared their environment.
pub fn processes_referencing(dir: &Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    live_stats()
        .into_iter()
        .filter(|s| {
            let cwd_hit = fs::read_link(format!("/proc/{}/cwd", s.pid))
                .map(|cwd| cwd.starts_with(dir))
                .unwrap_or(false);
            cwd_hit
                || fs::read(format!("/proc/{}/cmdline", s.pid))
                    .map(|c| c.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
        })
        .map(|s| s.pid)
        .collect()
}

/// Sends `sig` to a process group; a vanished group is not an error.
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid <= 1 {
        return; // never signal "every process" or init's group
    }
    let _ = killpg(Pid::from_raw(pgid), sig);
}

/// Sends `sig` to each pid; vanished pids are not an error.
pub fn signal_pids(pids: &[i32], sig: Signal) {
    let me = own_pid();
    for &p in pids {
        if p > 1 && p != me {
            let _ = kill(Pid::from_raw(p), sig);
        }
    }
}

/// Synchronous SIGKILL of every live process `find` returns, repeated until
/// none remain (a dying parent may fork once more). For `Drop` guards and
/// last-resort cleanup where no async runtime is available. Returns how many
/// distinct pids were killed.
pub fn kill_all_sync(find: impl Fn() -> Vec<i32>) -> usize {
    let mut killed = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = find();
        if pids.is_empty() || Instant::now() > deadline {
            return killed.len();
        }
        signal_pids(&pids, Signal::SIGKILL);
        killed.extend(pids);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a process tree: `sig` to group `pgid` and to every pid `extra`
/// finds, up to `grace` for all of them to exit, then SIGKILL to whatever is
/// left, repeated until nothing remains (bounded). Returns true when the
/// tree is verifiably gone.
///
/// `extra` is re-evaluated after each signal so that processes forked during
/// shutdown are caught too. The group is only signalled while it has live
/// members: a group id is never recycled while a member (or an unreaped
/// leader) holds it, but once the group is empty its number may come back
/// as someone else's group.
pub async fn terminate_tree(
    pgid: Option<i32>,
    extra: impl Fn() -> Vec<i32>,
    sig: Signal,
    grace: Duration,
) -> bool {
    let mut pgid = pgid.filter(|&g| g > 1);
    let remaining = |pgid: &mut Option<i32>| {
        let mut v = match *pgid {
            Some(g) => {
                let members = group_members(g);
                if members.is_empty() {
                    *pgid = None; // gone for good: never signal that number again
                }
                members
            }
            None => Vec::new(),
        };
        v.extend(extra());
        v.sort_unstable();
        v.dedup();
        v
    };
    let initial = remaining(&mut pgid);
    if initial.is_empty() {
        return true;
    }
    if let Some(g) = pgid {
        signal_group(g, sig);
    }
    signal_pids(&initial, sig);

    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if remaining(&mut pgid).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let hard_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = remaining(&mut pgid);
        if left.is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= hard_deadline {
            return false;
        }
        if let Some(g) = pgid {
            signal_group(g, Signal::SIGKILL);
        }
        signal_pids(&left, Signal::SIGKILL);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 987654 1000 10";
        let st = parse_stat(1234, line).unwrap();
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 1234);
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_ticks, 987654);
        assert_eq!(st.cpu_ticks, 7 + 3 + 2 + 1, "user, system and reaped");
    }

    #[test]
    fn a_busy_tree_accumulates_cpu_time() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sh -c 'while :; do :; done' & wait"])
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let ticks = tree_cpu_ticks(pid);
        for p in descendants(pid) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        // The grandchild spins: most of the 0.6 s is CPU time.
        assert!(ticks >= 20, "{ticks} ticks");
    }

    #[test]
    fn own_process_is_readable() {
        let me = own_pid();
        let rec = ProcessRecord::capture(me).unwrap();
        assert!(rec.is_alive());
        let other = ProcessRecord {
            start_ticks: rec.start_ticks + 1,
            ..rec
        };
        assert!(!other.is_alive(), "a recycled pid must not look alive");
    }
}
