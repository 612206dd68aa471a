//! Per-sandbox cgroup v1 groups for the limits rlimits cannot express.
//!
//! `RLIMIT_NPROC` counts processes per real user across the host, and a sandbox started by
//! root maps its user to root, so a process limit needs the v1 `pids` controller. The v1
//! `memory` controller adds a limit on resident memory (and swap, where accounted) on top of
//! `RLIMIT_AS`. Both are found at run time under the host process's own group, so a sandbox
//! stays inside whatever limits the host itself runs under; when a hierarchy is missing or not
//! writable the limit is skipped with a warning.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::Limits;

/// Processes of the sandbox machinery itself (bubblewrap's monitor and the namespace's init)
/// that the pids group counts on top of the plugin's own.
pub(crate) const MACHINERY_PIDS: u32 = 2;

static NEXT: AtomicU64 = AtomicU64::new(0);
/// The missing hierarchy is reported once per process, not once per sandbox.
static WARNED_NO_PIDS: AtomicBool = AtomicBool::new(false);

/// Every group this crate creates is named `sigil-sandbox-<host pid>-<n>`.
const PREFIX: &str = "sigil-sandbox-";

/// Where this host process's `pids` and `memory` v1 groups are, if writable hierarchies exist.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roots {
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
}

impl Roots {
    /// Reads `/proc/self/cgroup` and keeps the v1 `pids` and `memory` hierarchies that are
    /// mounted at the usual place.
    pub(crate) fn detect() -> Self {
        let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
            return Self::default();
        };
        let find = |controller: &str| {
            text.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let _id = parts.next()?;
                let controllers = parts.next()?;
                let path = parts.next()?;
                if !controllers.split(',').any(|c| c == controller) {
                    return None;
                }
                let dir = Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(path.trim_start_matches('/'));
                dir.join("cgroup.procs").is_file().then_some(dir)
            })
        };
        let roots = Self {
            pids: find("pids"),
            memory: find("memory"),
        };
        roots.remove_stale();
        roots
    }

    /// Removes groups left behind by hosts that have died (a host that exits while its last
    /// sandbox is still being torn down cannot finish the cleanup itself).
    fn remove_stale(&self) {
        for root in [&self.pids, &self.memory].into_iter().flatten() {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(owner) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix(PREFIX))
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok())
                else {
                    continue;
                };
                if owner != std::process::id() && !crate::procfs::alive(owner) {
                    let mut stale = Groups {
                        dirs: vec![entry.path()],
                    };
                    for pid in stale.members() {
                        if let Ok(raw) = i32::try_from(pid) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(raw),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                    }
                    if stale.remove() {
                        tracing::debug!(group = %entry.path().display(), "removed a stale sandbox cgroup");
                    }
                }
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or_else(|| "unavailable".to_owned(), |p| p.display().to_string())
        };
        format!("pids: {}, memory: {}", show(&self.pids), show(&self.memory))
    }

    /// Creates the groups `limits` needs, each with its limit written. A group that cannot be
    /// made is skipped with a warning naming the limit that is therefore not enforced.
    pub(crate) fn create(&self, limits: &Limits) -> Groups {
        let mut dirs = Vec::new();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Some(processes) = limits.processes {
            let max = u64::from(processes) + u64::from(MACHINERY_PIDS);
            match &self.pids {
                Some(root) => match make(&root.join(&name), &[("pids.max", max)]) {
                    Ok(dir) => dirs.push(dir),
                    Err(e) => tracing::warn!(
                        limit = "processes",
                        error = %e,
                        "cannot create a pids cgroup under {}: the sandbox's process limit is not enforced",
                        root.display()
                    ),
                },
                None => {
                    if !WARNED_NO_PIDS.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            limit = "processes",
                            "no writable cgroup v1 pids hierarchy at /sys/fs/cgroup/pids: \
                             sandboxes' process limits are not enforced"
                        );
                    }
                }
            }
        }
        if let Some(bytes) = limits.memory_bytes {
            match &self.memory {
                Some(root) => {
                    let dir = root.join(&name);
                    match make(&dir, &[("memory.limit_in_bytes", bytes)]) {
                        Ok(dir) => {
                            // Swap accounting is optional; when present, swap must not extend
                            // the limit either.
                            let memsw = dir.join("memory.memsw.limit_in_bytes");
                            if memsw.exists()
                                && let Err(e) = std::fs::write(&memsw, bytes.to_string())
                            {
                                tracing::warn!(error = %e, "cannot limit swap in {}", dir.display());
                            }
                            dirs.push(dir);
                        }
                        Err(e) => tracing::warn!(
                            limit = "memory",
                            error = %e,
                            "cannot create a memory cgroup under {}: only RLIMIT_AS limits the \
                             sandbox's memory",
                            root.display()
                        ),
                    }
                }
                None => tracing::debug!(
                    "no writable cgroup v1 memory hierarchy: only RLIMIT_AS limits the sandbox's memory"
                ),
            }
        }
        Groups { dirs }
    }
}

fn make(dir: &Path, settings: &[(&str, u64)]) -> std::io::Result<PathBuf> {
    std::fs::create_dir(dir)?;
    for (file, value) in settings {
        if let Err(e) = std::fs::write(dir.join(file), value.to_string()) {
            let _ = std::fs::remove_dir(dir);
            return Err(e);
        }
    }
    Ok(dir.to_path_buf())
}

/// The groups of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    dirs: Vec<PathBuf>,
}

impl Groups {
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Host pids of every process in any of the groups.
    pub(crate) fn members(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Removes the groups that are empty; true when none is left.
    pub(crate) fn remove(&mut self) -> bool {
        self.dirs
            .retain(|dir| std::fs::remove_dir(dir).is_err() && dir.exists());
        self.dirs.is_empty()
    }

    /// Moves the groups out, leaving this value empty (for cleanup after drop).
    pub(crate) fn take(&mut self) -> Groups {
        Groups {
            dirs: std::mem::take(&mut self.dirs),
        }
    }
}
