//! `docker://` pulls from a real `docker-registry` on loopback, at the
//! source level: tags and digests, multi-arch indexes, token authentication
//! with credentials from an auth file, refusals, unknown tags, and use from
//! async runtime threads.

mod registry_support;

use gha_testkit::registry::{BASIC_USER, OciLayout, Registry, write_auth_file};
use gha_unpacker::image::{Digest, Index, Manifest, media_type};
use gha_unpacker::source::registry::{RegistryOptions, RegistrySource};
use gha_unpacker::source::{ImageSource, RegistryReference, SourceError};
use registry_support::{
    REPO, no_auth_files, push_multi_arch, push_single, read_blob, source, tag, two_layer_image,
};

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
    let (amd64, arm64, index) = push_multi_arch(&registry, scratch.path());

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

#[test]
fn public_images_behind_token_auth_pull_with_an_anonymous_token() {
    // Docker Hub's and GHCR's flow for public images: the registry still
    // challenges, and the token service grants pull without credentials.
    let registry = Registry::start_with_token_auth("ci-bot", "s3cret-pass").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut layout = OciLayout::create(&scratch.path().join("layout")).unwrap();
    let image = two_layer_image(&layout, "amd64");
    layout.tag("v1", &image.manifest).unwrap();
    registry
        .push(layout.dir(), "v1", "public/app", "v1", false)
        .unwrap();
    let before = registry.tokens_issued();

    let source = RegistrySource::new(
        &registry.host(),
        "public/app",
        tag("v1"),
        no_auth_files(scratch.path()),
    )
    .unwrap();
    assert_eq!(
        source.root().unwrap().digest.to_string(),
        image.manifest.digest
    );
    let layer = read_blob(&source, &image.layers[0]);
    assert_eq!(Digest::of(&layer).to_string(), image.layers[0].digest);
    assert_eq!(registry.tokens_issued() - before, 1);
}

#[test]
fn basic_auth_registries_get_the_credentials_and_refuse_wrong_ones() {
    let registry = Registry::start_with_basic_auth().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let image = push_single(&registry, scratch.path());

    let options = RegistryOptions {
        auth_file: Some(registry.auth_file().unwrap().to_owned()),
        ..RegistryOptions::default()
    };
    let good = source(&registry, tag("v1"), options);
    assert_eq!(
        good.root().unwrap().digest.to_string(),
        image.manifest.digest
    );
    let layer = read_blob(&good, &image.layers[1]);
    assert_eq!(Digest::of(&layer).to_string(), image.layers[1].digest);

    let wrong = scratch.path().join("wrong.json");
    write_auth_file(&wrong, &registry.host(), BASIC_USER, "not-it").unwrap();
    let options = RegistryOptions {
        auth_file: Some(wrong),
        ..RegistryOptions::default()
    };
    match source(&registry, tag("v1"), options).root() {
        Err(SourceError::Unauthorized { detail, .. }) => {
            assert!(detail.contains(BASIC_USER), "{detail}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    match source(&registry, tag("v1"), no_auth_files(scratch.path())).root() {
        Err(SourceError::Unauthorized { detail, .. }) => {
            assert!(detail.contains("refused anonymous access"), "{detail}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}
