//! Registry pulls through network faults, injected by a proxy in front of
//! the real `docker-registry`: 503s retried a bounded number of times, blob
//! downloads that break off resumed with `Range` or started over, and
//! S3-style blob redirects that must not receive the registry's token.

mod registry_support;

use gha_testkit::registry::{FaultProxy, Faults, Registry, write_auth_file};
use gha_unpacker::image::Digest;
use gha_unpacker::source::registry::RegistryOptions;
use gha_unpacker::source::{ImageSource, SourceError};
use registry_support::{REPO, push_single, quick_retries, read_blob, through};

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
