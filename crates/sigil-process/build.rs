//! Compiles the plugin protocol (`proto/sigil/plugin/v1`) with protox, a pure-Rust protobuf
//! compiler, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it is compiled: checkouts sharing a target directory
    // share this script's binary, and each must compile its own protocol files.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let files = ["types", "plugin", "host", "kinds"]
        .map(|name| root.join(format!("sigil/plugin/v1/{name}.proto")));
    for name in ["types", "plugin", "host", "kinds"] {
        // Relative to the package, so that cargo checks this checkout's files.
        println!("cargo:rerun-if-changed=../../proto/sigil/plugin/v1/{name}.proto");
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
