//! A data directory in a temporary folder with one process plugin installed, opened with the
//! process tier on the real sandbox.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sigil_audit::{Filter, RecordKind, Verdict};
use sigil_process::{ProcessTier, RestartPolicy};
use sigil_runtime::{Home, InvokeError, Runtime};

pub const SECRET: &str = "s3cr3t-Value-71c2e4";

/// What to install.
pub struct Setup<'a> {
    pub id: &'a str,
    pub binary: &'a Path,
    /// Extra entries of `[capabilities] request`, each `{ capability = "...", reason = "..." }`.
    pub requests: &'a [&'a str],
    /// Extra consent patterns.
    pub consent: &'a [&'a str],
    /// Lines for `[execution.limits]`.
    pub limits: &'a str,
    /// The `env` table's body.
    pub env: &'a str,
    /// Extra patterns in user alice's deny list.
    pub user_deny: &'a [&'a str],
    pub policy: RestartPolicy,
    /// `execution.interpreter`; with it, the entry is a script file `plugin` and the binary
    /// is installed as `runner`.
    pub interpreter: Option<&'a str>,
    /// More of `sigil.toml` (other users, say), appended as written.
    pub config: &'a str,
    /// More of `plugin.toml` (a `[lifecycle]` table, say), appended as written.
    pub manifest: &'a str,
}

impl<'a> Setup<'a> {
    pub fn new(id: &'a str, binary: &'a Path) -> Setup<'a> {
        Setup {
            id,
            binary,
            requests: &[],
            consent: &[],
            limits: "",
            env: "",
            user_deny: &[],
            policy: RestartPolicy::DEFAULT,
            interpreter: None,
            config: "",
            manifest: "",
        }
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub sigil: Runtime,
    pub rt: tokio::runtime::Runtime,
    pub id: String,
}

pub fn binaries() -> sigil_process_guests::Binaries {
    match sigil_process_guests::build() {
        Ok(binaries) => binaries,
        Err(error) => panic!("{error}"),
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Installs and opens. The plugin may use kv (except `locked.*` for alice), the secret `token`,
/// and whatever `setup` adds.
pub fn open(setup: &Setup<'_>) -> World {
    // Under the target directory, so the fixture can be hard-linked rather than copied.
    open_in(world_dir(), setup)
}

/// A fresh folder for a world, under the target directory.
pub fn world_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// [`open`] in a folder made by [`world_dir`].
pub fn open_in(dir: tempfile::TempDir, setup: &Setup<'_>) -> World {
    let root = dir.path().canonicalize().unwrap();
    let plugin_dir = root.join("home/plugins").join(setup.id);
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let binary = match setup.interpreter {
        Some(_) => {
            std::fs::write(
                plugin_dir.join("plugin"),
                "# a script for the interpreter\n",
            )
            .unwrap();
            plugin_dir.join("runner")
        }
        None => plugin_dir.join("plugin"),
    };
    if std::fs::hard_link(setup.binary, &binary).is_err() {
        std::fs::copy(setup.binary, &binary).unwrap();
    }
    let interpreter = setup
        .interpreter
        .map(|i| format!("interpreter = \"{i}\""))
        .unwrap_or_default();
    let mut requests = vec![
        r#"{ capability = "kv.*", reason = "keeps state" }"#.to_string(),
        r#"{ capability = "secret.use:token", reason = "authenticates" }"#.to_string(),
    ];
    requests.extend(setup.requests.iter().map(|r| r.to_string()));
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            r#"
id = "{id}"
name = "Fixture {id}"
version = "0.1.0"
description = "A process-tier test fixture."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [
  {requests}
]

[execution]
tier = "process"
entry = "plugin"
{interpreter}
env = {{ {env} }}

[execution.limits]
{limits}

{manifest}
"#,
            id = setup.id,
            manifest = setup.manifest,
            requests = requests.join(",\n  "),
            env = setup.env,
            limits = setup.limits,
            interpreter = interpreter,
        ),
    )
    .unwrap();
    let mut consent = vec!["kv.*", "secret.use:token"];
    consent.extend(setup.consent);
    let mut deny = vec!["kv.write:locked.*"];
    deny.extend(setup.user_deny);
    std::fs::write(
        root.join("home/sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]
deny = [{deny}]

[plugins.{id}]
consent = [{consent}]
config = {{ greeting = "hi" }}

[secrets.token]
value = "{SECRET}"
destinations = [{{ host = "127.0.0.1", header = "authorization", path = "/weather" }}]

[secrets.other]
value = "other-secret"
destinations = [{{ host = "api.example.invalid" }}]

[secrets.elsewhere]
value = "{SECRET}"
destinations = [{{ host = "api.example.invalid", header = "authorization" }}]

{config}
"#,
            id = setup.id,
            deny = quoted(&deny),
            consent = quoted(&consent),
            config = setup.config,
        ),
    )
    .unwrap();
    open_home(dir, root, setup.id, setup.policy)
}

/// Opens the data directory `<root>/home` (in the world's temporary folder `dir`) with the
/// process tier on the real sandbox, its MCP approvals kept in `<root>/home/state/mcp`.
pub fn open_home(dir: tempfile::TempDir, root: PathBuf, id: &str, policy: RestartPolicy) -> World {
    let binaries = binaries();
    let home = Home::resolve(Some(&root.join("home"))).unwrap();
    let sandbox = match sigil_sandbox::Sandbox::with_init(&binaries.sandbox_init) {
        Ok(sandbox) => sandbox,
        Err(error) => panic!(
            "the process tier's tests need a working sandbox: {error}\n(install bubblewrap: apt-get install -y bubblewrap)"
        ),
    };
    let tier = ProcessTier::with_sandbox(root.join("home/run/process"), sandbox)
        .unwrap()
        .restart_policy(policy)
        .state_dir(root.join("home/state/mcp"));
    let sigil = Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Process, Arc::new(tier))],
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    World {
        dir,
        root,
        sigil,
        rt,
        id: id.to_string(),
    }
}

impl World {
    /// Fails the test, with the reason, unless the plugin loaded and runs.
    pub fn assert_running(&self) {
        let entry = self.sigil.manager().get(&self.id).unwrap();
        assert_eq!(
            entry.lifecycle().state(),
            sigil_runtime::State::Running,
            "{:?}",
            entry.lifecycle().error()
        );
    }

    pub fn call(&self, tool: &str, input: Value) -> Result<Value, InvokeError> {
        let actor = self.sigil.local_actor(None, None);
        self.rt
            .block_on(
                self.sigil
                    .invoke(&actor, &format!("{}/{tool}", self.id), input),
            )
            .map(|i| i.output)
    }

    pub fn error_of(&self, tool: &str, input: Value) -> String {
        match self.call(tool, input) {
            Ok(value) => panic!("expected `{tool}` to fail, got {value}"),
            Err(error) => error.to_string(),
        }
    }

    pub fn ok(&self, tool: &str, input: Value) -> Value {
        match self.call(tool, input) {
            Ok(value) => value,
            Err(error) => panic!("`{tool}` failed: {error}"),
        }
    }

    /// The capabilities of every denial recorded.
    pub fn denials(&self) -> Vec<String> {
        self.records(Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .into_iter()
        .map(|r| r.record.capability.unwrap_or_default())
        .collect()
    }

    pub fn allowed(&self) -> Vec<String> {
        self.records(Filter {
            decision: Some(Verdict::Allow),
            ..Filter::default()
        })
        .into_iter()
        .map(|r| r.record.capability.unwrap_or_default())
        .collect()
    }

    pub fn records(&self, filter: Filter) -> Vec<sigil_audit::Record> {
        self.sigil.audit().query(&filter).unwrap()
    }

    /// The last outcome record: (steps, outcome).
    /// The last outcome record's steps (as `invoke ok; validate-post failed: why`) and outcome.
    pub fn last_outcome(&self) -> (String, String) {
        let records = self.records(Filter {
            kind: Some(RecordKind::Outcome),
            ..Filter::default()
        });
        let last = records.last().unwrap();
        (
            steps_text(&last.record),
            last.record.outcome.clone().unwrap_or_default(),
        )
    }
}

/// An outcome record's steps, each as it prints, joined with `; `.
pub fn steps_text(record: &sigil_audit::NewRecord) -> String {
    record
        .steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub mod python;
