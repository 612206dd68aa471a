#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use sigil_build::*;
#[test]
fn generate() {
    for (n, w) in [
        ("hello", "tool-plugin"),
        ("hostile", "tool-plugin"),
        ("hostile_http", "tool-plugin-http"),
    ] {
        let r = CBuild::new(
            [format!("/work/main/crates/sigil-guests/c/{n}.c")],
            "/work/main/wit",
            w,
            format!("/tmp/sb/{n}.wasm"),
            format!("/tmp/sb/scratch-{n}"),
        );
        let e = build_c(&r);
        match e {
            Ok(p) => println!("{p:?} {:?}", inspect_component(&p)),
            Err(e) => println!("{e}"),
        }
    }
}
