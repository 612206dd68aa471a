//! Landlock rules inside the sandbox: a second wall behind bubblewrap's mount namespace.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The newest Landlock ABI these rules were written and tested against. Newer kernels are
/// asked for no more; older ones enforce what they can (best effort), and the status says so.
const ABI_TARGET: ABI = ABI::V7;

/// What the process may touch once restricted. Paths are as seen inside the sandbox.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    /// Read and execute, nothing else.
    pub(crate) read_only: Vec<PathBuf>,
    /// Everything, including creating and removing files.
    pub(crate) read_write: Vec<PathBuf>,
    /// Device files: read, write and ioctl on existing nodes, never create one.
    pub(crate) devices: Vec<PathBuf>,
    /// TCP ports the process may connect to (on any address). No port may be bound.
    pub(crate) connect_ports: Vec<u16>,
}

/// Applies `rules` to the calling process (and everything it later execs or forks) and returns
/// how well the kernel enforced them.
pub(crate) fn restrict(rules: &Rules) -> Result<RulesetStatus, String> {
    let abi = ABI_TARGET;
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(Ruleset::create)
        .map_err(|e| format!("landlock: creating the ruleset: {e}"))?;
    for path in &rules.read_only {
        ruleset = add_path(ruleset, path, AccessFs::from_read(abi))?;
    }
    for path in &rules.read_write {
        ruleset = add_path(ruleset, path, AccessFs::from_all(abi))?;
    }
    let device_access = AccessFs::from_read(abi) | AccessFs::WriteFile | AccessFs::IoctlDev;
    for path in &rules.devices {
        ruleset = add_path(ruleset, path, device_access)?;
    }
    for &port in &rules.connect_ports {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|e| format!("landlock: allowing tcp port {port}: {e}"))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("landlock: restricting the process: {e}"))?;
    Ok(status.ruleset)
}

fn add_path(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, String> {
    // A rule on a file may only carry file rights; the directory-only ones would be rejected.
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_TARGET)
    };
    let fd = PathFd::new(path).map_err(|e| format!("landlock: opening {}: {e}", path.display()))?;
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(|e| format!("landlock: adding a rule for {}: {e}", path.display()))
}
