//! Test fixtures for Sigil's process tier, built with `sigil-process-kit`:
//! `sigil-echo-plugin` (echo, host access, the whole execution pipeline) and
//! `sigil-hostile-plugin` (one tool per attempt to escape its sandbox or take the host down) and
//! `sigil-hook-plugin` (a hook whose verdicts the tool input chooses).
//!
//! ```no_run
//! let binaries = sigil_process_guests::build().expect("fixtures build");
//! assert!(binaries.echo.exists());
//! ```
//!
//! The fixtures are binaries, which Cargo does not build for a dependent crate's tests, so
//! [`build`] runs `cargo build` for them (and for `sigil-sandbox-init`, the sandbox's
//! entrypoint) once per process, in the same target directory and profile as the caller.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Where the built fixtures are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `sigil-echo-plugin`.
    pub echo: PathBuf,
    /// `sigil-hostile-plugin`.
    pub hostile: PathBuf,
    /// `sigil-hook-plugin`.
    pub hook: PathBuf,
    /// `sigil-sandbox-init`, the sandbox's entrypoint, built alongside.
    pub sandbox_init: PathBuf,
}

/// Builds the fixtures (once per process) and returns their paths.
///
/// # Errors
/// When cargo fails, with its output.
pub fn build() -> Result<Binaries, String> {
    static BUILT: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BUILT.get_or_init(build_now).clone()
}

fn build_now() -> Result<Binaries, String> {
    // The binaries land next to the caller's own `deps/` directory: same target dir, same
    // profile.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this test binary: {e}"))?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--bins",
        "-p",
        "sigil-process-guests",
        "-p",
        "sigil-sandbox",
    ]);
    if dir.ends_with("release") {
        command.arg("--release");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo to build the process-tier fixtures: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the process-tier fixtures failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binaries = Binaries {
        echo: dir.join("sigil-echo-plugin"),
        hostile: dir.join("sigil-hostile-plugin"),
        hook: dir.join("sigil-hook-plugin"),
        sandbox_init: dir.join("sigil-sandbox-init"),
    };
    for path in [
        &binaries.echo,
        &binaries.hostile,
        &binaries.hook,
        &binaries.sandbox_init,
    ] {
        if !path.exists() {
            return Err(format!("{} was not built", path.display()));
        }
    }
    Ok(binaries)
}
