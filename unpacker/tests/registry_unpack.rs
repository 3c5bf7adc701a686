//! `docker://` images unpacked end to end from a real `docker-registry`:
//! the requested platform of a multi-arch index, a corrupted blob that
//! fails the unpack and leaves nothing behind, and the command line with
//! token auth and credentials from `$REGISTRY_AUTH_FILE`.

mod registry_support;

use std::path::Path;
use std::process::Command;

use gha_testkit::registry::{OciLayout, Registry};
use gha_unpacker::image::{Platform, media_type};
use gha_unpacker::source::{ImageSource, RegistryReference};
use gha_unpacker::unpack::{UnpackError, UnpackOptions, resolve, unpack_to_dir};
use registry_support::{
    REPO, no_auth_files, push_multi_arch, push_single, source, tag, two_layer_image,
};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

fn options_for(architecture: &str) -> UnpackOptions {
    UnpackOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        },
        ..UnpackOptions::default()
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_requested_platform_of_a_multi_arch_index_is_unpacked() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (amd64, arm64, _) = push_multi_arch(&registry, scratch.path());

    for image in [&arm64, &amd64] {
        let source = source(&registry, tag("multi"), no_auth_files(scratch.path()));
        let options = options_for(&image.architecture);
        let resolved = resolve(&source, &options).unwrap();
        assert_eq!(resolved.manifest_digest.to_string(), image.manifest.digest);
        assert_eq!(resolved.config.architecture, image.architecture);
        let dest = scratch
            .path()
            .join(format!("rootfs-{}", image.architecture));
        unpack_to_dir(&source, &resolved, &dest, &options).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("arch")).unwrap(),
            image.architecture
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/os-release")).unwrap(),
            "ID=test\n"
        );
    }

    let source = source(&registry, tag("multi"), no_auth_files(scratch.path()));
    match resolve(&source, &options_for("riscv64")) {
        Err(UnpackError::NoMatchingPlatform { platform }) => assert_eq!(platform, "linux/riscv64"),
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
}

#[test]
fn a_corrupted_blob_fails_the_unpack_and_leaves_nothing() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    // Bit rot in the registry's storage that still inflates: the gzip
    // header's mtime field (bytes 4..8). Same size, different digest.
    let layer = &image.layers[1];
    let data = registry.blob_data_path(&layer.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[4] ^= 0x5a;
    std::fs::write(&data, &bytes).unwrap();

    let source = source(&registry, tag("v1"), no_auth_files(scratch.path()));
    let options = options_for("amd64");
    let resolved = resolve(&source, &options).unwrap();
    let parent = scratch.path().join("out");
    std::fs::create_dir(&parent).unwrap();
    let dest = parent.join("rootfs");
    match unpack_to_dir(&source, &resolved, &dest, &options) {
        Err(UnpackError::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected.to_string(), layer.digest);
            assert_ne!(actual, expected);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!dest.exists(), "nothing at the destination");
    assert!(
        entries(&parent).is_empty(),
        "no staging left: {:?}",
        entries(&parent)
    );
}

#[test]
fn a_digest_reference_that_the_registry_answers_differently_is_refused() {
    // The manifest's digest, asked for by digest, must be what comes back:
    // the registry is trusted for nothing.
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let data = registry.blob_data_path(&image.manifest.digest);
    let mut manifest = std::fs::read(&data).unwrap();
    let last = manifest.len() - 1;
    assert_eq!(manifest[last], b'}');
    manifest.push(b'\n');
    std::fs::write(&data, &manifest).unwrap();

    let reference = RegistryReference::Digest(image.manifest.digest.parse().unwrap());
    let source = source(&registry, reference, no_auth_files(scratch.path()));
    match resolve(&source, &options_for("amd64")) {
        Err(UnpackError::DigestMismatch { .. }) => {}
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[test]
fn the_command_line_pulls_with_token_auth_from_the_auth_file_env_or_flag() {
    let registry = Registry::start_with_token_auth("ci-bot", "s3cret-pass").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    push_single(&registry, scratch.path());
    let reference = format!("docker://{}/{REPO}:v1", registry.host());
    let missing = scratch.path().join("no-such-auth.json");
    let unpack = |dest: &Path, env_auth_file: &Path, flags: &[&str]| {
        Command::new(BIN)
            .args(["unpack", &reference, "--platform", "linux/amd64", "--dest"])
            .arg(dest)
            .args(flags)
            .env("REGISTRY_AUTH_FILE", env_auth_file)
            .env("HOME", scratch.path())
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("GHA_UNPACKER_REGISTRY_AUTH_FILE")
            .output()
            .unwrap()
    };
    let good = registry.auth_file().unwrap();

    let dest = scratch.path().join("refused");
    let refused = unpack(&dest, &missing, &[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused anonymous access"), "{stderr}");
    assert!(!dest.exists());

    let dest = scratch.path().join("from-env");
    let output = unpack(&dest, good, &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert_eq!(std::fs::read_to_string(dest.join("arch")).unwrap(), "amd64");

    let dest = scratch.path().join("from-flag");
    let output = unpack(
        &dest,
        &missing,
        &["--registry-auth-file", good.to_str().unwrap()],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read_to_string(dest.join("arch")).unwrap(), "amd64");
}

#[test]
fn docker_v2_manifests_and_manifest_lists_are_pulled_too() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut layout = OciLayout::create(&scratch.path().join("layout")).unwrap();
    let amd64 = two_layer_image(&layout, "amd64");
    let arm64 = two_layer_image(&layout, "arm64");
    let index = layout.add_plain_index(&[amd64, arm64]).unwrap();
    layout.tag("multi", &index).unwrap();
    registry
        .push_with(
            layout.dir(),
            "multi",
            REPO,
            "docker",
            &["--all", "--format", "v2s2"],
        )
        .unwrap();

    let source = source(&registry, tag("docker"), no_auth_files(scratch.path()));
    assert_eq!(
        source.root().unwrap().media_type,
        media_type::DOCKER_MANIFEST_LIST
    );
    let options = options_for("arm64");
    let resolved = resolve(&source, &options).unwrap();
    assert_eq!(
        resolved.manifest.media_type.as_deref(),
        Some(media_type::DOCKER_MANIFEST)
    );
    let dest = scratch.path().join("rootfs");
    unpack_to_dir(&source, &resolved, &dest, &options).unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("arch")).unwrap(), "arm64");
}
