//! `sigil plugin new` and `sigil plugin build`: scaffold a plugin that builds and passes its
//! own test out of the box, and build a plugin directory into its component.
//!
//! The WIT contract, the Python kit and the templates are compiled into this binary, so a
//! scaffold always matches the host that will run it.

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

const C_TEMPLATE: &[(&str, &str)] = files! {
    "plugin.toml" => "../../../examples/hello-c/plugin.toml",
    "hello.c" => "../../../examples/hello-c/hello.c",
};

/// Scaffolds a plugin named `name` in `dir/name`.
pub fn new(dir: &Path, name: &str, lang: Lang) -> Result<ExitCode> {
    sigil::manifest::PluginId::new(name)
        .map_err(|e| anyhow::anyhow!("`{name}` cannot be a plugin id: {e}"))?;
    let target = dir.join(name);
    if target.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            target.display()
        );
    }
    let template = match lang {
        Lang::Python => PYTHON_TEMPLATE,
        Lang::C => C_TEMPLATE,
        Lang::Rust => bail!(
            "Rust plugins are not scaffolded yet: write a `wasm32-wasip2` crate exporting the `tool-plugin` world of the WIT in \
             `sigil plugin new NAME --lang c`'s wit/ directory, then `sigil plugin build`"
        ),
    };
    for (path, text) in template.iter().chain(WIT) {
        let text = match (lang, *path) {
            (Lang::C, "plugin.toml") => {
                text.replacen("id = \"hello-c\"", &format!("id = \"{name}\""), 1)
            }
            _ => text.replace("{{name}}", name),
        };
        write(&target.join(path), &text)?;
    }
    if lang == Lang::C {
        write(&target.join(".gitignore"), "plugin.wasm\n")?;
    }
    println!("created {}", target.display());
    println!(
        "next: sigil plugin build {0} && sigil plugin install {0}",
        target.display()
    );
    Ok(ExitCode::SUCCESS)
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

fn build_rust(dir: &Path, output: &Path) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let has_target = installed
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2")
        })
        .unwrap_or(false);
    if !has_target {
        bail!("the Rust target wasm32-wasip2 is not installed: `rustup target add wasm32-wasip2`");
    }
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let built = std::fs::read_dir(dir.join("target/wasm32-wasip2/release"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .context("cargo produced no .wasm file")?;
    std::fs::copy(&built, output).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
