//! The seccomp filter inside the sandbox.
//!
//! Two filters, stacked. The first answers `EPERM` to system calls no plugin needs and that
//! widen the kernel's attack surface or reach outside the sandbox; everything else is allowed
//! (the namespaces, Landlock and the dropped capabilities already confine what those calls can
//! touch). The second answers `ENOSYS` to `clone3`, whose flags live in memory a filter cannot
//! read, so the C library falls back to `clone`, whose namespace flags the first filter checks.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Whether the sandboxed process may open TCP sockets (only when it has an egress port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inet {
    /// Only `AF_UNIX` sockets.
    Denied,
    /// `AF_UNIX`, and stream sockets of `AF_INET`/`AF_INET6`.
    TcpOnly,
}

/// System calls refused outright, whatever their arguments.
fn always_denied() -> Vec<i64> {
    let mut calls = vec![
        // Debugging and reading other processes.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        // Mounts and namespaces.
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        // Kernel keyrings.
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        // Kernel programmability and introspection.
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_fanotify_init,
        libc::SYS_syslog,
        // io_uring performs socket and file operations this filter would not see.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Machine administration.
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_modify_ldt,
        libc::SYS_uselib,
    ]);
    calls
}

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e}"))
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| format!("seccomp: condition: {e}"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp: rule: {e}"))
}

fn as_u64(v: libc::c_int) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The rules of the `EPERM` filter.
fn denials(inet: Inet) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    use SeccompCmpArgLen::{Dword, Qword};
    use SeccompCmpOp::{Eq, MaskedEq, Ne};

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in always_denied() {
        // An empty rule list matches every invocation.
        rules.insert(call, Vec::new());
    }

    // clone(2) with any namespace flag. (CLONE_NEWTIME is not among them: for clone(2) that bit
    // is part of the exit signal.)
    let namespace_flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
    ];
    let mut clone_rules = Vec::new();
    for flag in namespace_flags {
        let flag = as_u64(flag);
        clone_rules.push(rule(vec![cond(0, Qword, MaskedEq(flag), flag)?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);

    // socket(2): the domain is an int, so only its low 32 bits are compared (a caller cannot
    // dodge the rule by setting the upper half, which the kernel ignores).
    let unix = as_u64(libc::AF_UNIX);
    let inet4 = as_u64(libc::AF_INET);
    let inet6 = as_u64(libc::AF_INET6);
    let mut socket_rules = Vec::new();
    match inet {
        Inet::Denied => socket_rules.push(rule(vec![cond(0, Dword, Ne, unix)?])?),
        Inet::TcpOnly => {
            socket_rules.push(rule(vec![
                cond(0, Dword, Ne, unix)?,
                cond(0, Dword, Ne, inet4)?,
                cond(0, Dword, Ne, inet6)?,
            ])?);
            // The low four bits of the type are the socket type; the rest are flags.
            let non_stream = [
                libc::SOCK_DGRAM,
                libc::SOCK_RAW,
                libc::SOCK_RDM,
                libc::SOCK_SEQPACKET,
                libc::SOCK_DCCP,
                // SOCK_PACKET, obsolete (libc deprecates the constant) but still accepted.
                10,
            ];
            for domain in [inet4, inet6] {
                for kind in non_stream {
                    socket_rules.push(rule(vec![
                        cond(0, Dword, Eq, domain)?,
                        cond(1, Dword, MaskedEq(0xf), as_u64(kind))?,
                    ])?);
                }
            }
        }
    }
    rules.insert(libc::SYS_socket, socket_rules);

    // ioctl(2) requests that push input into a terminal or reach the console.
    let mut ioctl_rules = Vec::new();
    for request in [libc::TIOCSTI, libc::TIOCLINUX] {
        ioctl_rules.push(rule(vec![cond(1, Dword, Eq, request)?])?);
    }
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    Ok(rules)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    on_match: SeccompAction,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, arch()?)
        .map_err(|e| format!("seccomp: building the filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp: compiling the filter: {e}"))
}

/// Installs both filters on the calling thread; they are inherited across fork and exec and
/// cannot be removed. Sets no-new-privileges, which the filters require.
pub(crate) fn install(inet: Inet) -> Result<(), String> {
    let eperm = compile(
        denials(inet)?,
        SeccompAction::Errno(u32::try_from(libc::EPERM).unwrap_or(1)),
    )?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let enosys = compile(
        clone3,
        SeccompAction::Errno(u32::try_from(libc::ENOSYS).unwrap_or(38)),
    )?;
    seccompiler::apply_filter(&eperm).map_err(|e| format!("seccomp: installing: {e}"))?;
    seccompiler::apply_filter(&enosys).map_err(|e| format!("seccomp: installing: {e}"))?;
    Ok(())
}
