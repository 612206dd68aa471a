use std::path::PathBuf;

/// The Debian command that installs everything a C guest needs. Every toolchain error repeats
/// it, so the fix is in the message.
pub const INSTALL_HINT: &str = "apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32";

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A piece of the C-to-WebAssembly toolchain is not installed.
    #[error("c guest toolchain: {missing} not found; install it with: {INSTALL_HINT}")]
    Toolchain {
        /// What is missing: a command or a file of the WASI sysroot.
        missing: String,
    },

    /// The request named no C source at all.
    #[error("c guest {output}: no c source files given")]
    NoSources {
        /// The component that was to be built.
        output: PathBuf,
    },

    /// A named C source does not exist or is not a file.
    #[error("c source {path}: not found or not a file")]
    SourceMissing {
        /// The source as named in the request.
        path: PathBuf,
    },

    /// The WIT package could not be read or resolved.
    #[error("wit package {dir}: {message}")]
    Wit {
        /// The WIT directory.
        dir: PathBuf,
        /// What the WIT parser said.
        message: String,
    },

    /// The requested world is not in the WIT package.
    #[error("wit package {dir}: no world `{world}` (worlds: {available})")]
    UnknownWorld {
        /// The WIT directory.
        dir: PathBuf,
        /// The world asked for.
        world: String,
        /// The worlds the package does have, comma-separated.
        available: String,
    },

    /// The C binding generator refused the world.
    #[error("c bindings for world `{world}` from {dir}: {message}")]
    Bindings {
        /// The WIT directory.
        dir: PathBuf,
        /// The world.
        world: String,
        /// What the generator said.
        message: String,
    },

    /// A file could not be read, written or created.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done: "cannot write", "cannot read", ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// clang could not be started.
    #[error("cannot run {program}: {source}; install it with: {INSTALL_HINT}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// clang rejected the sources; `stderr` has its diagnostics.
    #[error("compiling {sources} to {module} failed ({status}):\n{stderr}")]
    Compile {
        /// The sources, space-separated.
        sources: String,
        /// The core module that was to be written.
        module: PathBuf,
        /// clang's exit status.
        status: String,
        /// clang's diagnostics.
        stderr: String,
    },

    /// The compiled module could not be turned into a component (for example it imports
    /// something the world does not provide).
    #[error("making a component of {module}: {message}")]
    Component {
        /// The core module.
        module: PathBuf,
        /// What wit-component said.
        message: String,
    },

    /// The component failed validation.
    #[error("component {path} is invalid: {message}")]
    Invalid {
        /// Where the component is, or was to be written.
        path: PathBuf,
        /// What the validator said.
        message: String,
    },
}

impl BuildError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
