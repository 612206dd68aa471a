use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_component::ComponentEncoder;
use wit_parser::{Resolve, WorldId};

use crate::{BuildError, Toolchain};

/// What to build: C sources against one world of a WIT package, into one component.
///
/// The C sources include the generated bindings header by the world's name with dashes turned
/// to underscores: `#include "tool_plugin.h"` for the world `tool-plugin`.
#[derive(Debug, Clone)]
pub struct CBuild {
    /// The C files to compile and link together.
    pub sources: Vec<PathBuf>,
    /// Extra directories searched for `#include`; each source's own directory is always
    /// searched first for `#include "..."`.
    pub include_dirs: Vec<PathBuf>,
    /// The WIT package directory (with its dependencies in `deps/`), for example Sigil's `wit/`.
    pub wit_dir: PathBuf,
    /// The world to build for, for example `tool-plugin` or `tool-plugin-http`.
    pub world: String,
    /// Where the component is written. Written whole or not at all.
    pub output: PathBuf,
    /// A directory for generated bindings and the intermediate core module. Created if
    /// missing; its contents are overwritten. Give each concurrent build its own.
    pub scratch_dir: PathBuf,
}

impl CBuild {
    /// A build of `sources` for `world` of the package in `wit_dir`, written to `output`,
    /// with no extra include directories.
    pub fn new(
        sources: impl IntoIterator<Item = impl Into<PathBuf>>,
        wit_dir: impl Into<PathBuf>,
        world: impl Into<String>,
        output: impl Into<PathBuf>,
        scratch_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            sources: sources.into_iter().map(Into::into).collect(),
            include_dirs: Vec::new(),
            wit_dir: wit_dir.into(),
            world: world.into(),
            output: output.into(),
            scratch_dir: scratch_dir.into(),
        }
    }
}

/// Builds C sources into a validated Sigil component, finding the toolchain first.
///
/// The steps: generate C bindings for the world, compile and link the sources with the
/// bindings and the world's component type for `wasm32-wasi` as a reactor, wrap the core
/// module into a component with the WASI preview1 reactor adapter (so libc's WASI preview1
/// calls become WASI 0.2 imports), validate it and write it to `request.output`.
///
/// Returns the path of the component written.
///
/// # Errors
///
/// A [`BuildError`] naming what failed and where: a missing toolchain (with the `apt-get`
/// command that installs it), a missing source, a WIT error, clang's diagnostics, a module
/// that does not fit the world, or a component that fails validation.
pub fn build_c(request: &CBuild) -> Result<PathBuf, BuildError> {
    Toolchain::detect()?.build_c(request)
}

impl Toolchain {
    /// [`build_c`] with this toolchain, without finding it again.
    ///
    /// # Errors
    ///
    /// As for [`build_c`].
    pub fn build_c(&self, request: &CBuild) -> Result<PathBuf, BuildError> {
        if request.sources.is_empty() {
            return Err(BuildError::NoSources {
                output: request.output.clone(),
            });
        }
        if let Some(missing) = request.sources.iter().find(|path| !path.is_file()) {
            return Err(BuildError::SourceMissing {
                path: missing.clone(),
            });
        }

        let (mut resolve, world) = load_world(&request.wit_dir, &request.world)?;

        let bindings_dir = request.scratch_dir.join("bindings");
        create_dir(&bindings_dir)?;
        let generated = generate_bindings(&mut resolve, world, request, &bindings_dir)?;

        let module_path = request.scratch_dir.join("module.wasm");
        self.compile(request, &bindings_dir, &generated, &module_path)?;

        let module =
            fs::read(&module_path).map_err(|e| BuildError::io("cannot read", &module_path, e))?;
        let component_error = |e| component_error(&module_path, e);
        let component = ComponentEncoder::default()
            .validate(true)
            .module(&module)
            .map_err(component_error)?
            .adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
            .map_err(component_error)?
            .encode()
            .map_err(component_error)?;

        crate::inspect::validate(&component, &request.output)?;
        write_whole(&request.output, &component)?;
        Ok(request.output.clone())
    }

    fn compile(
        &self,
        request: &CBuild,
        bindings_dir: &Path,
        generated: &[PathBuf],
        module: &Path,
    ) -> Result<(), BuildError> {
        let mut args: Vec<OsString> = Self::base_flags().into_iter().map(Into::into).collect();
        for dir in
            std::iter::once(bindings_dir).chain(request.include_dirs.iter().map(PathBuf::as_path))
        {
            args.push("-I".into());
            args.push(dir.into());
        }
        args.extend(request.sources.iter().map(Into::into));
        args.extend(generated.iter().map(Into::into));
        args.push("-o".into());
        args.push(module.into());

        let output = Command::new(self.clang())
            .args(&args)
            .output()
            .map_err(|source| BuildError::Spawn {
                program: self.clang().to_path_buf(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(BuildError::Compile {
            sources: request
                .sources
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            module: module.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        })
    }
}

/// wit-component reports errors as `anyhow::Error`; the alternate form prints their chain.
fn component_error(module: &Path, error: impl std::fmt::Display) -> BuildError {
    BuildError::Component {
        module: module.to_path_buf(),
        message: format!("{error:#}"),
    }
}

/// Reads the WIT package in `dir` (with `deps/`) and finds `world` in it.
fn load_world(dir: &Path, world: &str) -> Result<(Resolve, WorldId), BuildError> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(dir).map_err(|e| BuildError::Wit {
        dir: dir.to_path_buf(),
        message: format!("{e:#}"),
    })?;
    let worlds = &resolve.packages[package].worlds;
    match worlds.get(world) {
        Some(&id) => Ok((resolve, id)),
        None => Err(BuildError::UnknownWorld {
            dir: dir.to_path_buf(),
            world: world.to_owned(),
            available: worlds.keys().cloned().collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Generates the world's C bindings into `dir` and returns the files to compile and link with
/// the sources: the bindings' C file and the object file that carries the world's component
/// type (a custom section the linker keeps, which the component encoder reads back).
fn generate_bindings(
    resolve: &mut Resolve,
    world: WorldId,
    request: &CBuild,
    dir: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let opts = wit_bindgen_c::Opts::default();
    let mut files = Files::default();
    opts.build()
        .generate(resolve, world, &mut files)
        .map_err(|e| BuildError::Bindings {
            dir: request.wit_dir.clone(),
            world: request.world.clone(),
            message: format!("{e:#}"),
        })?;

    let mut sources = Vec::new();
    for (name, contents) in files.iter() {
        let path = dir.join(name);
        fs::write(&path, contents).map_err(|e| BuildError::io("cannot write", &path, e))?;
        if path.extension().is_some_and(|ext| ext == "c" || ext == "o") {
            sources.push(path);
        }
    }
    Ok(sources)
}

fn create_dir(dir: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(dir).map_err(|e| BuildError::io("cannot create directory", dir, e))
}

/// Writes `bytes` to a temporary file next to `path` and renames it into place, so a reader
/// never sees half a component.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    let mut temp_name = OsString::from(".");
    temp_name.push(path.file_name().unwrap_or_else(|| "component".as_ref()));
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    fs::write(&temp, bytes).map_err(|e| BuildError::io("cannot write", &temp, e))?;
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        BuildError::io("cannot write", path, e)
    })
}

/// The world a C source declares for itself on a comment line of its own,
/// `// sigil-world: tool-plugin-http`, if it declares one.
///
/// C has no place for it otherwise, and a plugin's manifest says what it may do, not which
/// bindings it was written against.
///
/// ```
/// let source = "// sigil-world: tool-plugin-http\n#include \"tool_plugin_http.h\"\n";
/// assert_eq!(sigil_build::declared_world(source), Some("tool-plugin-http"));
/// assert_eq!(sigil_build::declared_world("int x;\n"), None);
/// ```
pub fn declared_world(source: &str) -> Option<&str> {
    source.lines().find_map(|line| {
        let comment = line.trim().strip_prefix("//")?.trim_start();
        let world = comment.strip_prefix(WORLD_MARKER)?.trim();
        (!world.is_empty()).then_some(world)
    })
}

/// The marker [`declared_world`] looks for after `//`.
pub const WORLD_MARKER: &str = "sigil-world:";
