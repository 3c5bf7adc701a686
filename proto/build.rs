//! Compiles `proto/**/*.proto` with protox (pure Rust) and prost-build, so
//! building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [
        "slurm_actions/v1/jobs.proto",
        "slurm_actions/v1/state.proto",
        "slurm_actions/v1/runner.proto",
        "slurm_actions/v1/unpack.proto",
        "slurm_actions/v1/lease.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
