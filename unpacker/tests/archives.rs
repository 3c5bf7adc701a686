//! The archive transports give the same tree as the layout they were made
//! from: `oci-archive:` and legacy `docker-archive:` written by `skopeo
//! copy`, and the Docker 25+ `docker save` form (an OCI layout plus
//! `manifest.json` in one tar).

mod support;

use std::path::Path;
use std::process::Command;

use gha_unpacker::source::{SourceRef, open_source};
use gha_unpacker::unpack::{UnpackOptions, resolve, unpack_to_dir};
use support::snapshot::snapshot;
use support::{Corrupt, Layer, write_layout};

fn unpack(source: &str, dest: &Path) {
    let reference: SourceRef = source.parse().unwrap();
    let opened = open_source(&reference).unwrap_or_else(|err| panic!("{source}: {err}"));
    let options = UnpackOptions::default();
    let image = resolve(opened.as_ref(), &options).unwrap();
    unpack_to_dir(opened.as_ref(), &image, dest, &options).unwrap();
}

fn skopeo_copy(from: &str, to: &str) {
    let output = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q", from, to])
        .output()
        .expect("skopeo is installed (deploy/local/install-deps)");
    assert!(
        output.status.success(),
        "skopeo copy {from} {to}: {output:?}"
    );
}

fn layers() -> Vec<Layer> {
    vec![
        Layer::new()
            .dir("etc")
            .file("etc/a", "a")
            .dir("usr")
            .file("usr/tool", "v1")
            .hardlink("usr/alias", "usr/tool"),
        Layer::new()
            .whiteout("etc/a")
            .symlink("etc/b", "../usr/tool"),
    ]
}

#[test]
fn archives_unpack_like_their_layout() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = write_layout(&w.join("layout"), "t", layers(), Corrupt::Nothing);
    let from = format!("oci:{}:t", layout.display());
    unpack(&from, &w.join("from-layout"));
    let want = snapshot(&w.join("from-layout"));

    let oci_archive = w.join("image.oci.tar");
    skopeo_copy(&from, &format!("oci-archive:{}:t", oci_archive.display()));
    unpack(
        &format!("oci-archive:{}:t", oci_archive.display()),
        &w.join("from-oci-archive"),
    );
    assert_eq!(snapshot(&w.join("from-oci-archive")), want, "oci-archive");

    let docker_archive = w.join("image.docker.tar");
    skopeo_copy(
        &from,
        &format!("docker-archive:{}:img:t", docker_archive.display()),
    );
    unpack(
        &format!("docker-archive:{}", docker_archive.display()),
        &w.join("from-docker-archive"),
    );
    assert_eq!(
        snapshot(&w.join("from-docker-archive")),
        want,
        "legacy docker-archive"
    );
    // skopeo's FILE:NAME:TAG picks an image by its RepoTags.
    let named = format!("docker-archive:{}:img:t", docker_archive.display());
    unpack(&named, &w.join("named"));
    assert_eq!(snapshot(&w.join("named")), want, "{named}");
    let reference: SourceRef = format!("docker-archive:{}:img:other", docker_archive.display())
        .parse()
        .unwrap();
    let error = open_source(&reference)
        .err()
        .expect("no such image")
        .to_string();
    assert!(error.contains("no image named \"img:other\""), "{error}");

    // Docker 25+: the layout itself plus a manifest.json, in one tar.
    let docker25 = w.join("image.docker25.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&docker25).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    let manifest = br#"[{"Config":"blobs/sha256/x","RepoTags":["img:t"],"Layers":[]}]"#;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "manifest.json", &manifest[..])
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    unpack(
        &format!("docker-archive:{}", docker25.display()),
        &w.join("from-docker25"),
    );
    assert_eq!(
        snapshot(&w.join("from-docker25")),
        want,
        "docker 25 archive"
    );
}

#[test]
fn a_missing_tag_is_named() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(&work.path().join("layout"), "t", layers(), Corrupt::Nothing);
    let reference: SourceRef = format!("oci:{}:nope", layout.display()).parse().unwrap();
    let error = open_source(&reference)
        .err()
        .expect("no such tag")
        .to_string();
    assert!(error.contains("no image tagged \"nope\""), "{error}");
}
