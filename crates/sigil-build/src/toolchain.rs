use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

/// Where Debian's `wasi-libc` puts the WASI sysroot: headers and libraries live under `/usr`
/// in target-named directories rather than in a sysroot of their own.
pub(crate) const SYSROOT: &str = "/usr";
pub(crate) const WASI_INCLUDE: &str = "/usr/include/wasm32-wasi";
pub(crate) const WASI_LIB: &str = "/usr/lib/wasm32-wasi";
pub(crate) const TARGET: &str = "wasm32-wasi";

/// The C-to-WebAssembly toolchain, found on this machine.
///
/// Finding it runs `clang` a few times (about 20 ms); find it once and reuse it for many
/// builds.
#[derive(Debug, Clone)]
pub struct Toolchain {
    clang: PathBuf,
    linker: PathBuf,
    builtins: PathBuf,
}

impl Toolchain {
    /// Finds `clang` on `PATH` and checks that it can link for `wasm32-wasi`: the `wasm-ld`
    /// linker (Debian `lld`), the WASI libc headers and libraries (`wasi-libc`) and the
    /// compiler-rt builtins for wasm32 (`libclang-rt-14-dev-wasm32`).
    ///
    /// # Errors
    ///
    /// [`BuildError::Toolchain`] naming the first missing piece, with the `apt-get` command
    /// that installs them all.
    pub fn detect() -> Result<Self, BuildError> {
        Self::with_clang(PathBuf::from("clang"))
    }

    /// Like [`Toolchain::detect`], with an explicit `clang` (for example `clang-14`).
    ///
    /// # Errors
    ///
    /// As for [`Toolchain::detect`].
    pub fn with_clang(clang: PathBuf) -> Result<Self, BuildError> {
        let missing = |what: String| BuildError::Toolchain { missing: what };
        let clang_name = clang.display().to_string();

        let version = query(&clang, &["--version"])
            .ok_or_else(|| missing(format!("the `{clang_name}` command")))?;
        if !version.to_ascii_lowercase().contains("clang") {
            return Err(missing(format!(
                "clang (`{clang_name}` says it is {})",
                version.lines().next().unwrap_or("something else")
            )));
        }

        // clang prints the bare name back when it cannot find the program.
        let linker = query(
            &clang,
            &[&format!("--target={TARGET}"), "-print-prog-name=wasm-ld"],
        )
        .map(|out| PathBuf::from(out.trim()))
        .filter(|path| path.is_absolute() && path.is_file())
        .ok_or_else(|| missing("the wasm32 linker `wasm-ld`".to_owned()))?;

        for file in [
            Path::new(WASI_INCLUDE).join("stdio.h"),
            Path::new(WASI_LIB).join("libc.a"),
            Path::new(WASI_LIB).join("crt1-reactor.o"),
        ] {
            if !file.is_file() {
                return Err(missing(format!("the wasi sysroot file {}", file.display())));
            }
        }

        let builtins = query(
            &clang,
            &[
                &format!("--target={TARGET}"),
                &format!("--sysroot={SYSROOT}"),
                "-print-libgcc-file-name",
            ],
        )
        .map(|out| PathBuf::from(out.trim()))
        .ok_or_else(|| missing("the wasm32 compiler-rt builtins".to_owned()))?;
        if !builtins.is_file() {
            return Err(missing(format!(
                "the wasm32 compiler-rt builtins {}",
                builtins.display()
            )));
        }

        Ok(Self {
            clang,
            linker,
            builtins,
        })
    }

    /// The `clang` this toolchain runs.
    pub fn clang(&self) -> &Path {
        &self.clang
    }

    /// The `wasm-ld` clang links with.
    pub fn linker(&self) -> &Path {
        &self.linker
    }

    /// The compiler-rt builtins archive clang links into every wasm32 module.
    pub fn builtins(&self) -> &Path {
        &self.builtins
    }

    /// The flags every C guest is compiled with: WASI target and sysroot, reactor execution
    /// model (a library with exports, no `main`), optimised.
    pub(crate) fn base_flags() -> Vec<String> {
        vec![
            format!("--target={TARGET}"),
            format!("--sysroot={SYSROOT}"),
            format!("-I{WASI_INCLUDE}"),
            format!("-L{WASI_LIB}"),
            "-mexec-model=reactor".to_owned(),
            "-O2".to_owned(),
            // Debian's libc.a carries DWARF; it would triple a small plugin. The name section
            // stays, so traps still show function names.
            "-Wl,--strip-debug".to_owned(),
            // An undeclared function would otherwise become an unresolvable import.
            "-Werror=implicit-function-declaration".to_owned(),
        ]
    }
}

/// Runs `program args` and returns its stdout, or `None` if it could not run or failed.
fn query(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
