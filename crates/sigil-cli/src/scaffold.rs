//! `sigil plugin new` and `sigil plugin build`: scaffold a plugin that builds and passes its
//! own test out of the box, and build a plugin directory into its component.
//!
//! The WIT contract, the Python and Rust kits and the templates are compiled into this binary,
//! so a scaffold always matches the host that will run it. A Rust plugin gets the kit's sources
//! in `vendor/sigil-pdk/` (it is not on crates.io), as a path dependency of its own workspace;
//! a Rust process plugin gets the process kit and its protocol in `vendor/sigil-process-kit/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

/// A plugin's source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Python, built with componentize-py.
    Python,
    /// C, built with clang and the WASI sysroot.
    C,
    /// Rust, built for `wasm32-wasip2`.
    Rust,
}

/// How a plugin is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// A WebAssembly component run by Sigil's engine.
    Wasm,
    /// A native process in Sigil's sandbox, serving gRPC on a Unix socket.
    Process,
}

/// The tier and language combinations `sigil plugin new` can scaffold.
const SUPPORTED: &str = "`--tier wasm --lang python|c|rust`, `--tier process --lang python|rust`";

/// What `sigil plugin new` scaffolds: each tier and language, with what builds it.
const COMBINATIONS: &[(&str, &str, &str)] = &[
    (
        "wasm",
        "python",
        "componentize-py (scripts/install-guest-toolchains)",
    ),
    (
        "wasm",
        "c",
        "clang and the WASI sysroot (scripts/install-guest-toolchains)",
    ),
    ("wasm", "rust", "cargo with the wasm32-wasip2 target"),
    (
        "process",
        "python",
        "the host's Python with the Sigil Python kit",
    ),
    ("process", "rust", "cargo for this machine"),
];

/// `sigil plugin new --list`: the kinds, tiers and languages a plugin can be scaffolded in.
pub fn list() -> ExitCode {
    println!("kinds: tool (hook, channel and provider plugins are written by hand for now)");
    println!("{:<8}  {:<7}  built with", "tier", "lang");
    for (tier, lang, built) in COMBINATIONS {
        println!("{tier:<8}  {lang:<7}  {built}");
    }
    println!("create one: sigil plugin new NAME --tier TIER --lang LANG");
    ExitCode::SUCCESS
}

macro_rules! files {
    ($($path:literal => $source:literal),* $(,)?) => {
        &[$(($path, include_str!($source))),*]
    };
}

/// The WIT package, as `wit/…` paths.
const WIT: &[(&str, &str)] = files! {
    "wit/types.wit" => "../../../wit/types.wit",
    "wit/tool.wit" => "../../../wit/tool.wit",
    "wit/kinds.wit" => "../../../wit/kinds.wit",
    "wit/deps/cli/cli.wit" => "../../../wit/deps/cli/cli.wit",
    "wit/deps/clocks/clocks.wit" => "../../../wit/deps/clocks/clocks.wit",
    "wit/deps/filesystem/filesystem.wit" => "../../../wit/deps/filesystem/filesystem.wit",
    "wit/deps/http/http.wit" => "../../../wit/deps/http/http.wit",
    "wit/deps/io/io.wit" => "../../../wit/deps/io/io.wit",
    "wit/deps/random/random.wit" => "../../../wit/deps/random/random.wit",
    "wit/deps/sockets/sockets.wit" => "../../../wit/deps/sockets/sockets.wit",
};

/// The Python kit, as `sigil_plugin/…` paths.
const PYTHON_KIT: &[(&str, &str)] = files! {
    "sigil_plugin/__init__.py" => "../../../sdk/python/src/sigil_plugin/__init__.py",
    "sigil_plugin/__main__.py" => "../../../sdk/python/src/sigil_plugin/__main__.py",
    "sigil_plugin/_component.py" => "../../../sdk/python/src/sigil_plugin/_component.py",
    "sigil_plugin/_errors.py" => "../../../sdk/python/src/sigil_plugin/_errors.py",
    "sigil_plugin/_host.py" => "../../../sdk/python/src/sigil_plugin/_host.py",
    "sigil_plugin/_plugin.py" => "../../../sdk/python/src/sigil_plugin/_plugin.py",
    "sigil_plugin/_schema.py" => "../../../sdk/python/src/sigil_plugin/_schema.py",
    "sigil_plugin/_validate.py" => "../../../sdk/python/src/sigil_plugin/_validate.py",
    "sigil_plugin/testing.py" => "../../../sdk/python/src/sigil_plugin/testing.py",
    "sigil_plugin/py.typed" => "../../../sdk/python/src/sigil_plugin/py.typed",
};

const PYTHON_TEMPLATE: &[(&str, &str)] = files! {
    "plugin.toml" => "../templates/python/plugin.toml",
    "app.py" => "../templates/python/app.py",
    "test_app.py" => "../templates/python/test_app.py",
    "README.md" => "../templates/python/README.md",
    ".gitignore" => "../templates/python/.gitignore",
};

/// The Rust kit's sources, as `vendor/sigil-pdk/…` paths; its manifest is [`PDK_MANIFEST`] and
/// its WIT the package above.
const RUST_KIT: &[(&str, &str)] = files! {
    "vendor/sigil-pdk/src/lib.rs" => "../../../sdk/rust/sigil-pdk/src/lib.rs",
    "vendor/sigil-pdk/src/component.rs" => "../../../sdk/rust/sigil-pdk/src/component.rs",
    "vendor/sigil-pdk/src/ctx.rs" => "../../../sdk/rust/sigil-pdk/src/ctx.rs",
    "vendor/sigil-pdk/src/error.rs" => "../../../sdk/rust/sigil-pdk/src/error.rs",
    "vendor/sigil-pdk/src/host.rs" => "../../../sdk/rust/sigil-pdk/src/host.rs",
    "vendor/sigil-pdk/src/testing.rs" => "../../../sdk/rust/sigil-pdk/src/testing.rs",
    "vendor/sigil-pdk/src/tool.rs" => "../../../sdk/rust/sigil-pdk/src/tool.rs",
};

/// The Rust kit's manifest as it is in this repository, inheriting from Sigil's workspace;
/// [`vendored_pdk_manifest`] makes it stand alone.
const PDK_MANIFEST: &str = include_str!("../../../sdk/rust/sigil-pdk/Cargo.toml");

const RUST_TEMPLATE: &[(&str, &str)] = files! {
    "Cargo.toml" => "../templates/rust/Cargo.toml.in",
    "plugin.toml" => "../templates/rust/plugin.toml",
    "src/lib.rs" => "../templates/rust/src/lib.rs",
    "tests/tools.rs" => "../templates/rust/tests/tools.rs",
    "README.md" => "../templates/rust/README.md",
    ".gitignore" => "../templates/rust/.gitignore",
};

const PROCESS_PYTHON_TEMPLATE: &[(&str, &str)] = files! {
    "plugin.toml" => "../templates/process-python/plugin.toml",
    "main.py" => "../templates/process-python/main.py",
    "test_main.py" => "../templates/process-python/test_main.py",
    "README.md" => "../templates/process-python/README.md",
    ".gitignore" => "../templates/process-python/.gitignore",
};

const PROCESS_RUST_TEMPLATE: &[(&str, &str)] = files! {
    "Cargo.toml" => "../templates/process-rust/Cargo.toml.in",
    "plugin.toml" => "../templates/process-rust/plugin.toml",
    "src/lib.rs" => "../templates/process-rust/src/lib.rs",
    "src/main.rs" => "../templates/process-rust/src/main.rs",
    "tests/process.rs" => "../templates/process-rust/tests/process.rs",
    "README.md" => "../templates/process-rust/README.md",
    ".gitignore" => "../templates/process-rust/.gitignore",
};

/// The process kit's sources and the protocol it compiles, as `vendor/sigil-process-kit/…`
/// paths; its manifest is [`PROCESS_KIT_MANIFEST`] and its build script [`PROCESS_KIT_BUILD`].
const PROCESS_KIT: &[(&str, &str)] = files! {
    "vendor/sigil-process-kit/src/lib.rs" => "../../sigil-process-kit/src/lib.rs",
    "vendor/sigil-process-kit/src/context.rs" => "../../sigil-process-kit/src/context.rs",
    "vendor/sigil-process-kit/src/server.rs" => "../../sigil-process-kit/src/server.rs",
    "vendor/sigil-process-kit/proto/sigil/plugin/v1/types.proto" => "../../../proto/sigil/plugin/v1/types.proto",
    "vendor/sigil-process-kit/proto/sigil/plugin/v1/plugin.proto" => "../../../proto/sigil/plugin/v1/plugin.proto",
    "vendor/sigil-process-kit/proto/sigil/plugin/v1/host.proto" => "../../../proto/sigil/plugin/v1/host.proto",
    "vendor/sigil-process-kit/proto/sigil/plugin/v1/kinds.proto" => "../../../proto/sigil/plugin/v1/kinds.proto",
};

/// The process kit's manifest as it is in this repository, inheriting from Sigil's workspace;
/// [`vendored_process_kit_manifest`] makes it stand alone with [`WORKSPACE_MANIFEST`].
const PROCESS_KIT_MANIFEST: &str = include_str!("../../sigil-process-kit/Cargo.toml");

/// Sigil's workspace manifest: the versions the process kit inherits.
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The process kit's build script, which finds the protocol at `../../proto` in this
/// repository; [`vendored_process_kit_build`] points it at the copy beside it.
const PROCESS_KIT_BUILD: &str = include_str!("../../sigil-process-kit/build.rs");

const C_TEMPLATE: &[(&str, &str)] = files! {
    "plugin.toml" => "../../../examples/hello-c/plugin.toml",
    "hello.c" => "../../../examples/hello-c/hello.c",
};

/// Scaffolds a plugin named `name` in `dir/name`.
pub fn new(dir: &Path, name: &str, tier: Tier, lang: Lang) -> Result<ExitCode> {
    if tier == Tier::Process {
        return new_process(dir, name, lang);
    }
    sigil::manifest::PluginId::new(name)
        .map_err(|e| anyhow::anyhow!("`{name}` cannot be a plugin id: {e}"))?;
    let target = dir.join(name);
    if target.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            target.display()
        );
    }
    let (template, wit_root) = match lang {
        Lang::Python => (PYTHON_TEMPLATE, target.clone()),
        Lang::C => (C_TEMPLATE, target.clone()),
        Lang::Rust => {
            check_crate_name(name)?;
            (RUST_TEMPLATE, target.join("vendor/sigil-pdk"))
        }
    };
    let crate_name = name.replace('-', "_");
    for (path, text) in template {
        let text = match (lang, *path) {
            (Lang::C, "plugin.toml") => {
                text.replacen("id = \"hello-c\"", &format!("id = \"{name}\""), 1)
            }
            _ => text
                .replace("{{name}}", name)
                .replace("{{crate}}", &crate_name),
        };
        write(&target.join(path), &text)?;
    }
    for (path, text) in WIT {
        write(&wit_root.join(path), text)?;
    }
    if lang == Lang::Rust {
        for (path, text) in RUST_KIT {
            write(&target.join(path), text)?;
        }
        write(
            &target.join("vendor/sigil-pdk/Cargo.toml"),
            &vendored_pdk_manifest()?,
        )?;
    }
    if lang == Lang::C {
        write(&target.join(".gitignore"), "plugin.wasm\n")?;
    }
    println!("created {}", target.display());
    if lang == Lang::Rust {
        println!("test: cd {} && cargo test", target.display());
    }
    println!(
        "next: sigil plugin build {0} && sigil plugin install {0}",
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Scaffolds a process-tier plugin named `name` in `dir/name`.
fn new_process(dir: &Path, name: &str, lang: Lang) -> Result<ExitCode> {
    let template = match lang {
        Lang::Python => PROCESS_PYTHON_TEMPLATE,
        Lang::Rust => PROCESS_RUST_TEMPLATE,
        Lang::C => bail!("`--tier process --lang c` cannot be scaffolded; supported: {SUPPORTED}"),
    };
    sigil::manifest::PluginId::new(name)
        .map_err(|e| anyhow::anyhow!("`{name}` cannot be a plugin id: {e}"))?;
    if lang == Lang::Rust {
        check_crate_name(name)?;
    }
    let target = dir.join(name);
    if target.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            target.display()
        );
    }
    let crate_name = name.replace('-', "_");
    for (path, text) in template {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name);
        write(&target.join(path), &text)?;
    }
    if lang == Lang::Rust {
        for (path, text) in PROCESS_KIT {
            write(&target.join(path), text)?;
        }
        write(
            &target.join("vendor/sigil-process-kit/Cargo.toml"),
            &vendored_process_kit_manifest()?,
        )?;
        write(
            &target.join("vendor/sigil-process-kit/build.rs"),
            &vendored_process_kit_build()?,
        )?;
    }
    println!("created {}", target.display());
    match lang {
        Lang::Python => println!("test: cd {} && python3 -m pytest", target.display()),
        _ => println!("test: cd {} && cargo test", target.display()),
    }
    match lang {
        Lang::Python => println!("next: sigil plugin install {}", target.display()),
        _ => println!(
            "next: sigil plugin build {0} && sigil plugin install {0}",
            target.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses plugin ids that are valid but cannot name a Rust crate.
fn check_crate_name(name: &str) -> Result<()> {
    const KEYWORDS: &[&str] = &[
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "test",
        "std",
        "core",
        "alloc",
        "proc-macro",
    ];
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!(
            "`{name}` cannot name a Rust crate: it starts with a digit; choose a name starting with a letter"
        );
    }
    if KEYWORDS.contains(&name) {
        bail!("`{name}` cannot name a Rust crate: it is reserved by Rust; choose another name");
    }
    Ok(())
}

/// The kit's manifest made to stand alone inside a plugin: the values it inherits from Sigil's
/// workspace written out (they are this binary's own), its lints and its dev-dependencies (the
/// example plugin, not shipped) dropped.
fn vendored_pdk_manifest() -> Result<String> {
    let mut doc: toml_edit::DocumentMut = PDK_MANIFEST
        .parse()
        .context("parsing the Rust kit's Cargo.toml compiled into sigil")?;
    let Some(package) = doc.get_mut("package").and_then(|p| p.as_table_like_mut()) else {
        bail!("the Rust kit's Cargo.toml compiled into sigil has no [package]");
    };
    for (key, value) in [
        ("version", env!("CARGO_PKG_VERSION")),
        ("edition", "2024"),
        ("rust-version", env!("CARGO_PKG_RUST_VERSION")),
        ("license", env!("CARGO_PKG_LICENSE")),
    ] {
        package.insert(key, toml_edit::value(value));
    }
    package.insert("publish", toml_edit::value(false));
    doc.remove("lints");
    doc.remove("dev-dependencies");
    let text = doc.to_string();
    // Anything else inherited would not resolve outside Sigil's workspace.
    if text.lines().any(|l| l.contains("workspace")) {
        bail!(
            "the Rust kit's Cargo.toml compiled into sigil still inherits from Sigil's workspace:\n{text}"
        );
    }
    Ok(format!(
        "# Sigil's plugin kit, written by `sigil plugin new` from Sigil {}. Do not edit.\n{text}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// The process kit's manifest made to stand alone inside a plugin: each dependency inherited
/// from Sigil's workspace written out with the workspace's version and default features, plus
/// the kit's own features; the package values it inherits are this binary's own; its lints and
/// dev-dependencies dropped.
fn vendored_process_kit_manifest() -> Result<String> {
    let workspace: toml_edit::DocumentMut = WORKSPACE_MANIFEST
        .parse()
        .context("parsing Sigil's workspace Cargo.toml compiled into sigil")?;
    let Some(inherited) = workspace
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table_like())
    else {
        bail!("Sigil's workspace Cargo.toml compiled into sigil has no [workspace.dependencies]");
    };
    let mut doc: toml_edit::DocumentMut = PROCESS_KIT_MANIFEST
        .parse()
        .context("parsing the process kit's Cargo.toml compiled into sigil")?;
    let Some(package) = doc.get_mut("package").and_then(|p| p.as_table_like_mut()) else {
        bail!("the process kit's Cargo.toml compiled into sigil has no [package]");
    };
    for (key, value) in [
        ("version", env!("CARGO_PKG_VERSION")),
        ("edition", "2024"),
        ("rust-version", env!("CARGO_PKG_RUST_VERSION")),
        ("license", env!("CARGO_PKG_LICENSE")),
    ] {
        package.insert(key, toml_edit::value(value));
    }
    package.insert("publish", toml_edit::value(false));
    doc.remove("lints");
    doc.remove("dev-dependencies");
    for section in ["dependencies", "build-dependencies"] {
        let Some(deps) = doc.get_mut(section).and_then(|d| d.as_table_like_mut()) else {
            continue;
        };
        let names: Vec<String> = deps.iter().map(|(k, _)| k.to_string()).collect();
        for name in names {
            let Some(dep) = deps.get(&name) else { continue };
            let inherits = dep
                .get("workspace")
                .and_then(|w| w.as_bool())
                .unwrap_or(false);
            if !inherits {
                continue;
            }
            let Some(from) = inherited.get(&name) else {
                bail!("the process kit inherits `{name}`, which Sigil's workspace does not define");
            };
            let mut table = toml_edit::InlineTable::new();
            if let Some(version) = from.as_str() {
                table.insert("version", version.into());
            } else if let Some(from) = from.as_table_like() {
                for (key, value) in from.iter() {
                    if let Some(value) = value.as_value() {
                        let mut value = value.clone();
                        value.decor_mut().clear();
                        table.insert(key, value);
                    }
                }
            } else {
                bail!("Sigil's workspace gives `{name}` neither a version nor a table");
            }
            let mut features: Vec<String> = Vec::new();
            for list in [
                table.get("features"),
                dep.get("features").and_then(|f| f.as_value()),
            ]
            .into_iter()
            .flatten()
            {
                for feature in list.as_array().into_iter().flatten() {
                    if let Some(feature) = feature.as_str()
                        && !features.iter().any(|f| f == feature)
                    {
                        features.push(feature.to_string());
                    }
                }
            }
            if !features.is_empty() {
                table.insert(
                    "features",
                    features.iter().collect::<toml_edit::Array>().into(),
                );
            }
            deps.insert(&name, toml_edit::value(table));
        }
    }
    let text = doc.to_string();
    if text.lines().any(|l| l.contains("workspace")) {
        bail!(
            "the process kit's Cargo.toml compiled into sigil still inherits from Sigil's workspace:\n{text}"
        );
    }
    Ok(format!(
        "# Sigil's process kit, written by `sigil plugin new` from Sigil {}. Do not edit.\n{text}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// The process kit's build script, reading the protocol from `proto/` beside it.
fn vendored_process_kit_build() -> Result<String> {
    const IN_SIGIL: &str = ".join(\"../../proto\")";
    if PROCESS_KIT_BUILD.matches(IN_SIGIL).count() != 1 {
        bail!(
            "the process kit's build.rs compiled into sigil does not read the protocol from `../../proto` once"
        );
    }
    Ok(PROCESS_KIT_BUILD.replacen(IN_SIGIL, ".join(\"proto\")", 1))
}

/// Builds the plugin in `dir` into the component its manifest's `execution.entry` names.
pub fn build(dir: &Path) -> Result<ExitCode> {
    let manifest = sigil::manifest::load_dir(dir).map_err(|errors| {
        anyhow::anyhow!(
            "{errors}\nfix the manifest first (`sigil plugin lint {}`)",
            dir.display()
        )
    })?;
    let Some(entry) = manifest.execution().entry.clone() else {
        bail!("{} has no execution.entry to build", manifest.file());
    };
    let output = dir.join(entry);
    if manifest.execution().tier == sigil::manifest::Tier::Process {
        return build_process(dir, manifest.id().as_str(), &output);
    }
    let world = if manifest
        .requested()
        .iter()
        .any(|c| c.pattern.as_str().starts_with("net."))
    {
        "tool-plugin-http"
    } else {
        "tool-plugin"
    };
    let lang = detect(dir)?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let wit = wit_dir(dir, scratch.path())?;
    let started = Instant::now();
    eprintln!("building {} ({lang:?}, world {world}) …", manifest.id());
    match lang {
        Lang::Python => build_python(dir, &wit, world, &output, scratch.path())?,
        Lang::C => {
            let sources: Vec<PathBuf> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "c"))
                .collect();
            let mut request =
                sigil_build::CBuild::new(sources, &wit, world, &output, scratch.path().join("c"));
            request.include_dirs.push(dir.to_path_buf());
            sigil_build::build_c(&request).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Lang::Rust => build_rust(dir, &output)?,
    }
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {} ({:.1} MB) in {:.1?}",
        output.display(),
        size as f64 / 1e6,
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

fn detect(dir: &Path) -> Result<Lang> {
    if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "c"))
    {
        Ok(Lang::C)
    } else {
        bail!(
            "{} holds no app.py, Cargo.toml or .c file: cannot tell how to build it",
            dir.display()
        )
    }
}

/// The plugin's own `wit/` when it has one, else the WIT compiled into sigil.
fn wit_dir(dir: &Path, scratch: &Path) -> Result<PathBuf> {
    if dir.join("wit/tool.wit").is_file() {
        return Ok(dir.join("wit"));
    }
    for (path, text) in WIT {
        write(&scratch.join(path), text)?;
    }
    Ok(scratch.join("wit"))
}

fn build_python(dir: &Path, wit: &Path, world: &str, output: &Path, scratch: &Path) -> Result<()> {
    let kit = scratch.join("kit");
    for (path, text) in PYTHON_KIT {
        write(&kit.join(path), text)?;
    }
    let status = Command::new("componentize-py")
        .arg("-d")
        .arg(wit)
        .args(["-w", world, "componentize", "app", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(&kit)
        .arg("-o")
        .arg(output)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "componentize-py is not installed: `pip install componentize-py==0.25.1` (or run scripts/install-python-kit)"
        ),
        Err(e) => bail!("cannot run componentize-py: {e}"),
        Ok(status) if !status.success() => {
            bail!("componentize-py failed ({status}); see its output above")
        }
        Ok(_) => Ok(()),
    }
}

/// Whether the Rust toolchain that builds in `dir` has the standard library for
/// `wasm32-wasip2`. Asks rustc, not rustup, so a toolchain installed without rustup counts too.
fn has_wasip2(dir: &Path) -> bool {
    let Ok(out) = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .output()
    else {
        return false;
    };
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(libdir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

fn build_rust(dir: &Path, output: &Path) -> Result<()> {
    if !has_wasip2(dir) {
        bail!("the Rust target wasm32-wasip2 is not installed: `rustup target add wasm32-wasip2`");
    }
    // Cargo reports where it wrote each artifact, wherever the target directory is
    // (`CARGO_TARGET_DIR`, or a workspace's above the plugin).
    let cargo = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--lib",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !cargo.status.success() {
        bail!(
            "cargo build failed ({}); see its output above",
            cargo.status
        );
    }
    let built = String::from_utf8_lossy(&cargo.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|x| x == "wasm"))
        .context(
            "cargo built no .wasm library: the crate needs `crate-type = [\"cdylib\", \"rlib\"]` under [lib]",
        )?;
    std::fs::copy(&built, output).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

/// A process plugin: a Rust one is built natively and its executable copied to the entry; a
/// Python one runs from its sources and needs no build.
fn build_process(dir: &Path, id: &str, output: &Path) -> Result<ExitCode> {
    if !dir.join("Cargo.toml").is_file() {
        println!(
            "{id} is a process plugin run from its sources ({}): nothing to build",
            output.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    eprintln!("building {id} (Rust, process tier) …");
    let cargo = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--bins",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !cargo.status.success() {
        bail!(
            "cargo build failed ({}); see its output above",
            cargo.status
        );
    }
    let wanted = output.file_name().map(|n| n.to_string_lossy().into_owned());
    let built = String::from_utf8_lossy(&cargo.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
                && wanted.as_deref().is_some_and(|w| m["target"]["name"] == w)
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| {
            format!(
                "cargo built no executable named `{}`, the file name of execution.entry",
                wanted.as_deref().unwrap_or_default()
            )
        })?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(&built, output).with_context(|| format!("copying {}", built.display()))?;
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {} ({:.1} MB) in {:.1?}",
        output.display(),
        size as f64 / 1e6,
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A kit source file left out of [`RUST_KIT`] would make every Rust scaffold fail to build.
    #[test]
    fn every_rust_kit_source_is_compiled_in() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust/sigil-pdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| {
                format!(
                    "vendor/sigil-pdk/src/{}",
                    e.unwrap().file_name().to_string_lossy()
                )
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = RUST_KIT.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn the_vendored_kit_manifest_stands_alone() {
        let text = vendored_pdk_manifest().unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let package = doc["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some("sigil-pdk"));
        assert_eq!(package["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(package["edition"].as_str(), Some("2024"));
        assert!(doc.get("lints").is_none() && doc.get("dev-dependencies").is_none());
        assert!(doc["dependencies"]["wit-bindgen"].is_inline_table());
        assert!(!text.contains("workspace"), "{text}");
    }

    /// A process kit source file left out of [`PROCESS_KIT`] would make every Rust process
    /// scaffold fail to build.
    #[test]
    fn every_process_kit_source_and_proto_is_compiled_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let listed = |dir: &Path, prefix: &str| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| format!("{prefix}{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        };
        let mut on_disk = listed(
            &root.join("crates/sigil-process-kit/src"),
            "vendor/sigil-process-kit/src/",
        );
        on_disk.extend(listed(
            &root.join("proto/sigil/plugin/v1"),
            "vendor/sigil-process-kit/proto/sigil/plugin/v1/",
        ));
        on_disk.sort();
        let mut embedded: Vec<String> = PROCESS_KIT.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn the_vendored_process_kit_stands_alone() {
        let text = vendored_process_kit_manifest().unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let package = doc["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some("sigil-process-kit"));
        assert_eq!(package["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
        assert!(doc.get("lints").is_none() && doc.get("dev-dependencies").is_none());
        assert!(!text.contains("workspace"), "{text}");
        // Inherited: the workspace's version and default features, plus the kit's features.
        let tokio = doc["dependencies"]["tokio"].as_inline_table().unwrap();
        assert_eq!(tokio["version"].as_str(), Some("1"));
        assert_eq!(tokio["default-features"].as_bool(), Some(false));
        let features: Vec<&str> = tokio["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        assert!(features.contains(&"rt-multi-thread") && features.contains(&"signal"));
        assert_eq!(
            doc["dependencies"]["serde_json"]["version"].as_str(),
            Some("1")
        );

        let build = vendored_process_kit_build().unwrap();
        assert!(build.contains(".join(\"proto\")") && !build.contains("../../proto"));
    }

    #[test]
    fn names_that_cannot_be_crates_are_refused_for_rust() {
        assert!(check_crate_name("hello-rust").is_ok());
        let digit = check_crate_name("1st").unwrap_err().to_string();
        assert_eq!(
            digit,
            "`1st` cannot name a Rust crate: it starts with a digit; choose a name starting with a letter"
        );
        let keyword = check_crate_name("self").unwrap_err().to_string();
        assert_eq!(
            keyword,
            "`self` cannot name a Rust crate: it is reserved by Rust; choose another name"
        );
    }
}
