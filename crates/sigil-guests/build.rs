//! Compiles every C program in `c/` and every C example in the workspace's `examples/` into a
//! WebAssembly component in `OUT_DIR`, with `sigil-build`.
//!
//! A missing toolchain fails the build with the command that installs it: the test suite must
//! never run without its fixtures, and a skipped fixture would look like a passing test.

#![allow(clippy::panic, reason = "a build script reports failure by panicking")]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sigil_build::{CBuild, Toolchain, declared_world};

/// One component to build.
struct Program {
    /// Output path, relative to `OUT_DIR`, without `.wasm`.
    name: String,
    sources: Vec<PathBuf>,
    world: String,
}

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let workspace = manifest_dir.join("..").join("..");
    let wit_dir = workspace.join("wit");
    let fixtures_dir = manifest_dir.join("c");
    let examples_dir = workspace.join("examples");

    // A directory is watched whole, so new files and the shared headers count too.
    for watched in [&fixtures_dir, &examples_dir, &wit_dir] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let mut programs = Vec::new();
    for source in c_files(&fixtures_dir) {
        let name = stem(&source);
        programs.push(Program {
            world: world_of(std::slice::from_ref(&source)),
            sources: vec![source],
            name,
        });
    }
    let example_dirs = if examples_dir.is_dir() {
        sorted_entries(&examples_dir)
    } else {
        Vec::new()
    };
    for dir in example_dirs {
        let sources = c_files(&dir);
        if dir.is_dir() && !sources.is_empty() {
            programs.push(Program {
                name: format!(
                    "examples/{}",
                    dir.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ),
                world: world_of(&sources),
                sources,
            });
        }
    }
    for program in &programs {
        for source in &program.sources {
            println!("cargo:rerun-if-changed={}", source.display());
        }
    }

    let toolchain = Toolchain::detect()
        .unwrap_or_else(|e| panic!("cannot build the sigil-guests fixtures: {e}"));

    // Two at a time: one clang per core of the machines this runs on.
    let next = Mutex::new(programs.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(program) = next.lock().unwrap_or_else(|e| e.into_inner()).next() {
                    let request = CBuild {
                        sources: program.sources.clone(),
                        include_dirs: Vec::new(),
                        wit_dir: wit_dir.clone(),
                        world: program.world.clone(),
                        output: out_dir.join(format!("{}.wasm", program.name)),
                        scratch_dir: out_dir.join("scratch").join(&program.name),
                    };
                    if let Err(e) = toolchain.build_c(&request) {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: {e}", program.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        panic!(
            "cannot build the sigil-guests fixtures:\n{}",
            failures.join("\n\n")
        );
    }

    let mut names = String::from(
        "/// Every component this crate builds, as given to [`path`].\npub const NAMES: &[&str] = &[\n",
    );
    for program in &programs {
        let _ = writeln!(names, "    {:?},", program.name);
    }
    names.push_str("];\n");
    let listing = out_dir.join("names.rs");
    fs::write(&listing, names)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", listing.display()));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    paths
}

fn c_files(dir: &Path) -> Vec<PathBuf> {
    if !dir.is_dir() {
        return Vec::new();
    }
    sorted_entries(dir)
        .into_iter()
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "c"))
        .collect()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The world the sources declare (`// sigil-world: NAME`); exactly one of them must.
fn world_of(sources: &[PathBuf]) -> String {
    let mut declared = Vec::new();
    for source in sources {
        let text = fs::read_to_string(source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        if let Some(world) = declared_world(&text) {
            declared.push((source, world.to_owned()));
        }
    }
    match declared.as_slice() {
        [(_, world)] => world.clone(),
        [] => panic!(
            "c sources {}: none declares its world; add a line `// sigil-world: tool-plugin` (or tool-plugin-http)",
            sources
                .iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        [(first, _), (second, _), ..] => panic!(
            "c sources {} and {} both declare a world; declare it once per component",
            first.display(),
            second.display()
        ),
    }
}
