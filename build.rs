//! Compiles the Envoy ext_authz `.proto` files vendored in `proto/` into the descriptor set
//! that gRPC server reflection serves (`src/server/reflection.rs`). protox is a protobuf
//! compiler in Rust, so no `protoc` is needed; only the Check service's file and its
//! imports are compiled.

use std::path::PathBuf;

const ROOT: &str = "envoy/service/auth/v3/external_auth.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");

    let encoded = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(false)
        .open_file(ROOT)?
        .encode_file_descriptor_set();

    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("ext_authz_descriptor_set.bin");
    std::fs::write(out, encoded)?;
    Ok(())
}
