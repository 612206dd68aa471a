//! The command line between the host and `sigil-sandbox-init`.
//!
//! The host writes it ([`RunConfig::to_args`]); the entrypoint reads it back
//! ([`Command::parse`]). Both sides live in this crate, so the format is private to it.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// What `sigil-sandbox-init run` applies before it execs the plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunConfig {
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) open_files: Option<u64>,
    pub(crate) cpu_seconds: Option<u64>,
    /// Paths inside the sandbox that Landlock lets the plugin read and execute.
    pub(crate) read_only: Vec<PathBuf>,
    /// Paths inside the sandbox that Landlock lets the plugin read and write.
    pub(crate) read_write: Vec<PathBuf>,
    pub(crate) egress_port: Option<u16>,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
}

/// One invocation of the entrypoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Inside the sandbox: limits, Landlock, seccomp, optional forwarder, then exec.
    Run(RunConfig),
    /// Inside the sandbox: the egress forwarder on 127.0.0.1:port.
    Forward { port: u16 },
    /// Inside a sandbox with no grants: apply the walls, report Landlock's status, exit.
    Probe,
    /// On the host: join the cgroups, then exec bubblewrap with the rest of the line.
    Join {
        cgroups: Vec<PathBuf>,
        program: PathBuf,
        args: Vec<OsString>,
    },
}

impl RunConfig {
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec!["run".into()];
        let mut number = |flag: &str, value: Option<u64>| {
            if let Some(v) = value {
                out.push(flag.into());
                out.push(v.to_string().into());
            }
        };
        number("--memory", self.memory_bytes);
        number("--nofile", self.open_files);
        number("--cpu", self.cpu_seconds);
        number("--egress-port", self.egress_port.map(u64::from));
        for p in &self.read_only {
            out.push("--ro".into());
            out.push(p.clone().into());
        }
        for p in &self.read_write {
            out.push("--rw".into());
            out.push(p.clone().into());
        }
        out.push("--".into());
        out.push(self.program.clone().into());
        out.extend(self.args.iter().cloned());
        out
    }
}

pub(crate) fn join_args(cgroups: &[PathBuf], program: &OsStr) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["join".into()];
    for dir in cgroups {
        out.push("--cgroup".into());
        out.push(dir.clone().into());
    }
    out.push("--".into());
    out.push(program.to_owned());
    out
}

impl Command {
    /// Parses the arguments after the program name.
    pub(crate) fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Command, String> {
        let mode = args
            .next()
            .ok_or("missing mode (run, forward, probe, join)")?;
        match mode.to_str() {
            Some("run") => parse_run(args).map(Command::Run),
            Some("forward") => {
                let flag = args.next();
                let value = args.next();
                match (flag.as_deref().and_then(OsStr::to_str), value) {
                    (Some("--port"), Some(v)) => Ok(Command::Forward {
                        port: number(&v, "--port")?,
                    }),
                    _ => Err("usage: forward --port PORT".to_owned()),
                }
            }
            Some("probe") => Ok(Command::Probe),
            Some("join") => {
                let mut cgroups = Vec::new();
                loop {
                    let flag = args.next().ok_or("join: missing `--` before the program")?;
                    match flag.to_str() {
                        Some("--cgroup") => {
                            cgroups.push(args.next().ok_or("join: --cgroup needs a path")?.into());
                        }
                        Some("--") => break,
                        _ => return Err(format!("join: unexpected argument {flag:?}")),
                    }
                }
                let program = args.next().ok_or("join: missing program after `--`")?;
                Ok(Command::Join {
                    cgroups,
                    program: program.into(),
                    args: args.collect(),
                })
            }
            _ => Err(format!("unknown mode {mode:?} (run, forward, probe, join)")),
        }
    }
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<RunConfig, String> {
    let mut config = RunConfig::default();
    loop {
        let flag = args.next().ok_or("run: missing `--` before the program")?;
        let Some(flag) = flag.to_str().map(str::to_owned) else {
            return Err(format!("run: unexpected argument {flag:?}"));
        };
        if flag == "--" {
            break;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("run: {flag} needs a value"))?;
        match flag.as_str() {
            "--memory" => config.memory_bytes = Some(number(&value, &flag)?),
            "--nofile" => config.open_files = Some(number(&value, &flag)?),
            "--cpu" => config.cpu_seconds = Some(number(&value, &flag)?),
            "--egress-port" => config.egress_port = Some(number(&value, &flag)?),
            "--ro" => config.read_only.push(value.into()),
            "--rw" => config.read_write.push(value.into()),
            _ => return Err(format!("run: unknown flag {flag}")),
        }
    }
    config.program = args.next().ok_or("run: missing program after `--`")?.into();
    config.args = args.collect();
    Ok(config)
}

fn number<T: std::str::FromStr>(value: &OsStr, flag: &str) -> Result<T, String> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag}: {value:?} is not a valid number"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn run_round_trips() {
        let config = RunConfig {
            memory_bytes: Some(1 << 20),
            open_files: Some(64),
            cpu_seconds: None,
            read_only: vec!["/data".into()],
            read_write: vec!["/out".into(), "/more".into()],
            egress_port: Some(8080),
            program: "/usr/bin/python3".into(),
            args: vec!["--".into(), "-c".into(), "--ro".into()],
        };
        let parsed = Command::parse(config.to_args().into_iter()).unwrap();
        assert_eq!(parsed, Command::Run(config));
    }

    #[test]
    fn join_round_trips() {
        let mut args = join_args(
            &["/sys/fs/cgroup/pids/x".into()],
            OsStr::new("/usr/bin/bwrap"),
        );
        args.push("--unshare-all".into());
        let parsed = Command::parse(args.into_iter()).unwrap();
        assert_eq!(
            parsed,
            Command::Join {
                cgroups: vec!["/sys/fs/cgroup/pids/x".into()],
                program: "/usr/bin/bwrap".into(),
                args: vec!["--unshare-all".into()],
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        for line in [
            vec![],
            vec!["nope"],
            vec!["run", "--memory", "lots", "--", "/bin/true"],
            vec!["run", "--bogus", "1", "--", "/bin/true"],
            vec!["run", "--memory", "1"],
            vec!["forward", "--port", "99999"],
            vec!["join", "--cgroup"],
        ] {
            let args = line.into_iter().map(OsString::from);
            assert!(Command::parse(args).is_err());
        }
    }
}
