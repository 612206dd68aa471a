//! The entrypoint of every Sigil sandbox. See `sigil_sandbox` for what it does; it is started
//! by the library, never by hand.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sigil_sandbox::init::main()
}
