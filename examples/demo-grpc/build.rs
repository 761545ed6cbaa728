//! Generates the Demo service's messages, client and server from
//! `proto/demo.proto`, with the protoc that `protoc-bin-vendored` ships, so
//! a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/demo.proto"],
        &["proto"],
    )?;
    Ok(())
}
