//! `sigil plugin new` and `sigil plugin build`: scaffold a plugin that builds and passes its
//! own test out of the box, and build a plugin directory into its component.
//!
//! The WIT contract, the Python and Rust kits and the templates are compiled into this binary,
//! so a scaffold always matches the host that will run it. A Rust plugin gets the kit's sources
//! in `vendor/sigil-pdk/` (it is not on crates.io), as a path dependency of its own workspace.

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
