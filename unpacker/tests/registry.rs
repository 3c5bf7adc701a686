//! `docker://` pulls from a real `docker-registry` on loopback: tags and
//! digests, multi-arch indexes, token authentication with credentials from
//! an auth file, refusals, unknown tags, corrupted blobs, and (through a
//! fault-injecting proxy) retries and resumed downloads.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use gha_testkit::registry::{
    BuiltImage, FaultProxy, Faults, Layer, OciLayout, Registry, write_auth_file,
};
use gha_unpacker::image::{Descriptor, Digest, Index, Manifest, media_type};
use gha_unpacker::source::registry::{RegistryOptions, RegistrySource, RetryPolicy};
use gha_unpacker::source::{ImageSource, RegistryReference, SourceError};

const REPO: &str = "test/app";

fn two_layer_image(layout: &OciLayout, architecture: &str) -> BuiltImage {
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
fn push_single(registry: &Registry, scratch: &Path) -> BuiltImage {
    let mut layout = OciLayout::create(&scratch.join("layout")).unwrap();
    let image = two_layer_image(&layout, "amd64");
    layout.tag("v1", &image.manifest).unwrap();
    registry
        .push(layout.dir(), "v1", REPO, "v1", false)
        .unwrap();
    image
}

fn source(
    registry: &Registry,
    reference: RegistryReference,
    options: RegistryOptions,
) -> RegistrySource {
    RegistrySource::new(&registry.host(), REPO, reference, options).unwrap()
}

fn tag(name: &str) -> RegistryReference {
    RegistryReference::Tag(name.to_owned())
}

/// Options that never look at the machine's own auth files.
fn no_auth_files(scratch: &Path) -> RegistryOptions {
    let empty = scratch.join("empty-auth.json");
    std::fs::write(&empty, "{}").unwrap();
    RegistryOptions {
        auth_file: Some(empty),
        ..RegistryOptions::default()
    }
}

fn descriptor(blob: &gha_testkit::registry::BlobRef) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.parse().unwrap(),
        size: blob.size,
        platform: None,
        annotations: None,
    }
}

fn read_blob(source: &RegistrySource, blob: &gha_testkit::registry::BlobRef) -> Vec<u8> {
    let mut bytes = Vec::new();
    source
        .blob(&descriptor(blob))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn pulls_by_tag_and_by_digest() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let manifest_digest: Digest = image.manifest.digest.parse().unwrap();

    let by_tag = source(&registry, tag("v1"), no_auth_files(scratch.path()));
    let root = by_tag.root().unwrap();
    assert_eq!(root.media_type, media_type::OCI_MANIFEST);
    assert_eq!(root.digest, manifest_digest, "Docker-Content-Digest");
    assert_eq!(Digest::of(&root.bytes), manifest_digest, "the bytes pushed");
    let manifest: Manifest = serde_json::from_slice(&root.bytes).unwrap();
    assert_eq!(manifest.layers.len(), 2);

    for blob in image.layers.iter().chain([&image.config]) {
        let bytes = read_blob(&by_tag, blob);
        assert_eq!(Digest::of(&bytes).to_string(), blob.digest);
        assert_eq!(bytes.len() as u64, blob.size);
    }

    let by_digest = source(
        &registry,
        RegistryReference::Digest(manifest_digest.clone()),
        no_auth_files(scratch.path()),
    );
    let root = by_digest.root().unwrap();
    assert_eq!(root.digest, manifest_digest);
    assert_eq!(Digest::of(&root.bytes), manifest_digest);
}

#[test]
fn a_multi_arch_index_is_the_root_and_its_manifests_follow() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut layout = OciLayout::create(&scratch.path().join("layout")).unwrap();
    let amd64 = two_layer_image(&layout, "amd64");
    let arm64 = two_layer_image(&layout, "arm64");
    let index = layout.add_index(&[amd64.clone(), arm64.clone()]).unwrap();
    layout.tag("multi", &index).unwrap();
    registry
        .push(layout.dir(), "multi", REPO, "multi", true)
        .unwrap();

    let source = source(&registry, tag("multi"), no_auth_files(scratch.path()));
    let root = source.root().unwrap();
    assert_eq!(root.media_type, media_type::OCI_INDEX);
    assert_eq!(root.digest.to_string(), index.digest);
    let parsed: Index = serde_json::from_slice(&root.bytes).unwrap();
    assert_eq!(parsed.manifests.len(), 3, "two images and an attestation");

    let arm = parsed
        .manifests
        .iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.architecture == "arm64")
        })
        .expect("an arm64 entry");
    let fetched = source.manifest(arm).unwrap();
    assert_eq!(fetched.digest.to_string(), arm64.manifest.digest);
    assert_eq!(
        Digest::of(&fetched.bytes).to_string(),
        arm64.manifest.digest
    );
    assert_eq!(fetched.media_type, media_type::OCI_MANIFEST);
    let layer = read_blob(&source, &arm64.layers[1]);
    assert_eq!(Digest::of(&layer).to_string(), arm64.layers[1].digest);
    assert_ne!(arm64.layers[1].digest, amd64.layers[1].digest);
}

#[test]
fn token_auth_with_credentials_from_an_auth_file() {
    let registry = Registry::start_with_token_auth("ci-bot", "s3cret-pass").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let issued_for_push = registry.tokens_issued();

    let options = RegistryOptions {
        auth_file: Some(registry.auth_file().unwrap().to_owned()),
        ..RegistryOptions::default()
    };
    let source = source(&registry, tag("v1"), options);
    let root = source.root().unwrap();
    assert_eq!(root.digest.to_string(), image.manifest.digest);
    for blob in image.layers.iter().chain([&image.config]) {
        let bytes = read_blob(&source, blob);
        assert_eq!(Digest::of(&bytes).to_string(), blob.digest);
    }
    assert_eq!(
        registry.tokens_issued() - issued_for_push,
        1,
        "one token, cached for the manifest and every blob"
    );
}

#[test]
fn wrong_or_missing_credentials_are_unauthorized() {
    let registry = Registry::start_with_token_auth("ci-bot", "s3cret-pass").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    push_single(&registry, scratch.path());

    let wrong = scratch.path().join("wrong.json");
    write_auth_file(&wrong, &registry.host(), "ci-bot", "not-the-password").unwrap();
    let options = RegistryOptions {
        auth_file: Some(wrong.clone()),
        ..RegistryOptions::default()
    };
    match source(&registry, tag("v1"), options).root() {
        Err(SourceError::Unauthorized { detail, .. }) => {
            assert!(detail.contains("\"ci-bot\""), "{detail}");
            assert!(detail.contains(&wrong.display().to_string()), "{detail}");
            assert!(!detail.contains("not-the-password"), "{detail}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    match source(&registry, tag("v1"), no_auth_files(scratch.path())).root() {
        Err(SourceError::Unauthorized { detail, .. }) => {
            assert!(detail.contains("refused anonymous access"), "{detail}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[test]
fn an_unknown_tag_or_repository_is_not_found() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    push_single(&registry, scratch.path());
    for (repository, reference) in [(REPO, "nope"), ("test/none", "v1")] {
        let source = RegistrySource::new(
            &registry.host(),
            repository,
            tag(reference),
            no_auth_files(scratch.path()),
        )
        .unwrap();
        match source.root() {
            Err(SourceError::NotFound { what }) => {
                assert!(
                    what.contains(&format!("{repository}:{reference}")),
                    "{what}"
                )
            }
            other => panic!("{repository}:{reference}: expected NotFound, got {other:?}"),
        }
    }
}

#[test]
fn a_corrupted_blob_reaches_the_caller_unmasked() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let layer = &image.layers[1];
    let data = registry.blob_data_path(&layer.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let source = source(&registry, tag("v1"), no_auth_files(scratch.path()));
    let served = read_blob(&source, layer);
    assert_eq!(served.len() as u64, layer.size);
    assert_ne!(
        Digest::of(&served).to_string(),
        layer.digest,
        "the source hands out raw bytes; the caller's digest check must see the damage"
    );
}

#[test]
fn works_on_tokio_runtime_threads_and_blocking_threads() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = registry.host();
    let options = no_auth_files(scratch.path());
    let digests = runtime.block_on(async move {
        // Made and dropped inside the runtime: must not panic.
        let made_in_async = RegistrySource::new(&host, REPO, tag("v1"), options.clone()).unwrap();
        let from_async = made_in_async.root().unwrap().digest;
        drop(made_in_async);
        let from_blocking = tokio::task::spawn_blocking(move || {
            let source = RegistrySource::new(&host, REPO, tag("v1"), options).unwrap();
            source.root().unwrap().digest
        })
        .await
        .unwrap();
        (from_async, from_blocking)
    });
    assert_eq!(digests.0.to_string(), image.manifest.digest);
    assert_eq!(digests.1.to_string(), image.manifest.digest);
}

/// Quick retries: the faults below are injected, not waited out.
fn quick_retries(scratch: &Path) -> RegistryOptions {
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

fn through(proxy: &FaultProxy, options: RegistryOptions) -> RegistrySource {
    RegistrySource::new(&proxy.host(), REPO, tag("v1"), options).unwrap()
}

#[test]
fn unavailable_answers_are_retried_a_bounded_number_of_times() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let proxy = FaultProxy::start(&registry.host()).unwrap();

    proxy.set_faults(Faults {
        unavailable: 2,
        ..Faults::default()
    });
    let root = through(&proxy, quick_retries(scratch.path()))
        .root()
        .unwrap();
    assert_eq!(root.digest.to_string(), image.manifest.digest);
    assert_eq!(proxy.seen().len(), 3, "two 503s, then the manifest");

    proxy.set_faults(Faults {
        unavailable: 3,
        ..Faults::default()
    });
    match through(&proxy, quick_retries(scratch.path())).root() {
        Err(SourceError::Transport { detail, .. }) => {
            assert!(
                detail.contains("503") && detail.contains("3 attempts"),
                "{detail}"
            )
        }
        other => panic!("expected a Transport error, got {other:?}"),
    }
}

#[test]
fn a_blob_download_that_breaks_off_resumes_with_range() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let proxy = FaultProxy::start(&registry.host()).unwrap();
    let layer = &image.layers[0];
    let half = (layer.size / 2) as usize;
    proxy.set_faults(Faults {
        cut_body: Some((layer.digest.clone(), half)),
        ..Faults::default()
    });

    let bytes = read_blob(&through(&proxy, quick_retries(scratch.path())), layer);
    assert_eq!(Digest::of(&bytes).to_string(), layer.digest);
    let ranges: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|request| request.path.contains(&layer.digest))
        .map(|request| request.range)
        .collect();
    assert_eq!(ranges, [None, Some(format!("bytes={half}-"))]);
}

#[test]
fn without_range_support_a_broken_blob_download_starts_over() {
    let registry = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    let proxy = FaultProxy::start(&registry.host()).unwrap();
    let layer = &image.layers[1];
    proxy.set_faults(Faults {
        cut_body: Some((layer.digest.clone(), 10)),
        ignore_range: true,
        ..Faults::default()
    });

    let bytes = read_blob(&through(&proxy, quick_retries(scratch.path())), layer);
    assert_eq!(Digest::of(&bytes).to_string(), layer.digest);
    let blob_requests = proxy
        .seen()
        .iter()
        .filter(|request| request.path.contains(&layer.digest))
        .count();
    assert_eq!(blob_requests, 2);
}

#[test]
fn redirected_blobs_are_fetched_without_the_registrys_authorization() {
    // The image in a token-auth registry whose blobs redirect, S3-style, to
    // a second (anonymous) store with the same content.
    let registry = Registry::start_with_token_auth("ci-bot", "s3cret-pass").unwrap();
    let blob_store = Registry::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());
    blob_store
        .push(&scratch.path().join("layout"), "v1", REPO, "v1", false)
        .unwrap();
    let front = FaultProxy::start(&registry.host()).unwrap();
    let store = FaultProxy::start(&blob_store.host()).unwrap();
    front.set_faults(Faults {
        redirect_blobs_to: Some(store.host()),
        ..Faults::default()
    });
    let auth_file = scratch.path().join("auth.json");
    write_auth_file(&auth_file, &front.host(), "ci-bot", "s3cret-pass").unwrap();
    let options = RegistryOptions {
        auth_file: Some(auth_file),
        ..quick_retries(scratch.path())
    };

    let source = through(&front, options);
    assert_eq!(
        source.root().unwrap().digest.to_string(),
        image.manifest.digest
    );
    let layer = &image.layers[0];
    let bytes = read_blob(&source, layer);
    assert_eq!(Digest::of(&bytes).to_string(), layer.digest);

    let asked_registry = front
        .seen()
        .into_iter()
        .filter(|request| request.path.contains("/blobs/"))
        .collect::<Vec<_>>();
    assert!(
        asked_registry.iter().all(|request| request.authorization),
        "{asked_registry:?}"
    );
    let asked_store = store.seen();
    assert_eq!(asked_store.len(), 1, "{asked_store:?}");
    assert!(asked_store[0].path.contains("X-Signature=test"));
    assert!(
        !asked_store[0].authorization,
        "the registry's token went to the blob store"
    );
}
