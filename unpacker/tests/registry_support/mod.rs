//! Shared by the registry test files: the test image, pushing it, and
//! sources with options that never read the machine's own auth files.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use gha_testkit::registry::{BlobRef, BuiltImage, FaultProxy, Layer, OciLayout, Registry};
use gha_unpacker::image::Descriptor;
use gha_unpacker::source::registry::{RegistryOptions, RegistrySource, RetryPolicy};
use gha_unpacker::source::{ImageSource, RegistryReference};

pub const REPO: &str = "test/app";

pub fn two_layer_image(layout: &OciLayout, architecture: &str) -> BuiltImage {
    layout
        .add_image(
            architecture,
            &[
                Layer::files(&[("etc/", ""), ("etc/os-release", "ID=test\n")]),
                Layer::files(&[("arch", architecture), ("etc/motd", "hello\n")]),
            ],
        )
        .unwrap()
}

/// A layout with one amd64 image tagged `v1`, pushed as `REPO:v1`.
pub fn push_single(registry: &Registry, scratch: &Path) -> BuiltImage {
    let mut layout = OciLayout::create(&scratch.join("layout")).unwrap();
    let image = two_layer_image(&layout, "amd64");
    layout.tag("v1", &image.manifest).unwrap();
    registry
        .push(layout.dir(), "v1", REPO, "v1", false)
        .unwrap();
    image
}

/// An amd64 and an arm64 image behind one index, pushed with `--all` as
/// `REPO:multi`: (amd64, arm64, index).
pub fn push_multi_arch(registry: &Registry, scratch: &Path) -> (BuiltImage, BuiltImage, BlobRef) {
    let mut layout = OciLayout::create(&scratch.join("layout")).unwrap();
    let amd64 = two_layer_image(&layout, "amd64");
    let arm64 = two_layer_image(&layout, "arm64");
    let index = layout.add_index(&[amd64.clone(), arm64.clone()]).unwrap();
    layout.tag("multi", &index).unwrap();
    registry
        .push(layout.dir(), "multi", REPO, "multi", true)
        .unwrap();
    (amd64, arm64, index)
}

pub fn source(
    registry: &Registry,
    reference: RegistryReference,
    options: RegistryOptions,
) -> RegistrySource {
    RegistrySource::new(&registry.host(), REPO, reference, options).unwrap()
}

pub fn tag(name: &str) -> RegistryReference {
    RegistryReference::Tag(name.to_owned())
}

/// Options that never look at the machine's own auth files.
pub fn no_auth_files(scratch: &Path) -> RegistryOptions {
    let empty = scratch.join("empty-auth.json");
    std::fs::write(&empty, "{}").unwrap();
    RegistryOptions {
        auth_file: Some(empty),
        ..RegistryOptions::default()
    }
}

pub fn descriptor(blob: &BlobRef) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.parse().unwrap(),
        size: blob.size,
        platform: None,
        annotations: None,
    }
}

pub fn read_blob(source: &RegistrySource, blob: &BlobRef) -> Vec<u8> {
    let mut bytes = Vec::new();
    source
        .blob(&descriptor(blob))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// Quick retries: faults are injected, not waited out.
pub fn quick_retries(scratch: &Path) -> RegistryOptions {
    RegistryOptions {
        retry: RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            blob_resumes: 2,
        },
        ..no_auth_files(scratch)
    }
}

pub fn through(proxy: &FaultProxy, options: RegistryOptions) -> RegistrySource {
    RegistrySource::new(&proxy.host(), REPO, tag("v1"), options).unwrap()
}
