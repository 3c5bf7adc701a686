//! Conformance: images made of hand-made layers, unpacked by this unpacker
//! and by `umoci raw unpack`, compared entry by entry (type, mode, owner,
//! size, content hash, link target, mtime, hard-link groups). Images that
//! try to write outside the root, or whose digests do not match, must fail
//! and leave nothing at the destination.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gha_unpacker::source::{SourceRef, open_source};
use gha_unpacker::unpack::{UnpackError, UnpackOptions, resolve, unpack_to_dir};
use support::snapshot::snapshot;
use support::{Compress, Corrupt, Layer, write_layout};

const TAG: &str = "t";

fn ours(source: &str, dest: &Path) -> Result<(), UnpackError> {
    let reference: SourceRef = source.parse().unwrap();
    let opened = open_source(&reference)?;
    let options = UnpackOptions::default();
    let image = resolve(opened.as_ref(), &options)?;
    unpack_to_dir(opened.as_ref(), &image, dest, &options).map(|_| ())
}

fn umoci(layout: &Path, dest: &Path) {
    let output = Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{TAG}", layout.display()))
        .arg(dest)
        .output()
        .expect("umoci is installed (deploy/local/install-deps)");
    assert!(output.status.success(), "umoci: {output:?}");
}

/// Unpacks `layers` with both tools and asserts identical trees; returns
/// the tree's root for further checks.
fn same_as_umoci(layers: Vec<Layer>) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(&work.path().join("layout"), TAG, layers, Corrupt::Nothing);
    let mine = work.path().join("ours");
    let theirs = work.path().join("umoci");
    ours(&format!("oci:{}:{TAG}", layout.display()), &mine).unwrap();
    umoci(&layout, &theirs);
    let (mine_tree, their_tree) = (snapshot(&mine), snapshot(&theirs));
    for (path, facts) in &their_tree {
        assert_eq!(
            mine_tree.get(path),
            Some(facts),
            "{path} differs from umoci's"
        );
    }
    let extra: Vec<_> = mine_tree
        .keys()
        .filter(|p| !their_tree.contains_key(*p))
        .collect();
    assert!(extra.is_empty(), "not in umoci's tree: {extra:?}");
    (work, mine)
}

fn paths(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().collect()
}

#[test]
fn whiteouts_hide_files_and_directories_of_lower_layers() {
    let (_work, root) = same_as_umoci(vec![
        Layer::new()
            .dir("etc")
            .file("etc/gone", "x")
            .file("etc/kept", "k")
            .dir("var")
            .dir("var/cache")
            .file("var/cache/a", "a")
            .file("var/cache/b", "b"),
        Layer::new()
            .whiteout("etc/gone")
            .whiteout("var/cache")
            .whiteout("never/existed"),
    ]);
    assert_eq!(paths(&root), [".", "etc", "etc/kept", "var"]);
}

#[test]
fn a_whiteout_spares_its_own_layer() {
    same_as_umoci(vec![
        Layer::new().dir("d").file("d/f", "lower"),
        Layer::new().dir("d").file("d/f", "upper").whiteout("d/f"),
    ]);
}

#[test]
fn opaque_directories_hide_lower_children_before_or_after_entries() {
    for marker_first in [true, false] {
        let mut upper = Layer::new().dir("d");
        if marker_first {
            upper = upper.opaque("d");
        }
        upper = upper.file("d/new", "n").dir("d/sub").file("d/sub/x", "x");
        if !marker_first {
            upper = upper.opaque("d");
        }
        let (_work, root) = same_as_umoci(vec![
            Layer::new()
                .dir("d")
                .file("d/old", "o")
                .dir("d/sub")
                .file("d/sub/old", "o"),
            upper,
        ]);
        assert_eq!(
            paths(&root),
            [".", "d", "d/new", "d/sub", "d/sub/x"],
            "marker first: {marker_first}"
        );
    }
}

#[test]
fn entries_replace_entries_of_another_type() {
    same_as_umoci(vec![
        Layer::new()
            .file("f2d", "file")
            .dir("d2l")
            .file("d2l/inner", "i")
            .symlink("l2f", "f2d")
            .dir("target"),
        Layer::new()
            .dir("f2d")
            .file("f2d/child", "c")
            .symlink("d2l", "target")
            .file("l2f", "now a file"),
    ]);
}

#[test]
fn hard_links_across_layers_keep_their_inodes() {
    let (_work, root) = same_as_umoci(vec![
        Layer::new()
            .dir("bin")
            .file("bin/tool", "v1")
            .hardlink("bin/alias", "bin/tool")
            .file("doomed", "d")
            .hardlink("survivor", "doomed"),
        Layer::new()
            .hardlink("bin/third", "bin/alias")
            .whiteout("doomed"),
        Layer::new().file("bin/tool", "v2"),
    ]);
    let tree = snapshot(&root);
    assert_eq!(tree["bin/third"].group, tree["bin/alias"].group);
    assert_ne!(tree["bin/tool"].group, tree["bin/alias"].group);
    assert_eq!(
        tree["survivor"].sha256,
        tree["bin/alias"]
            .sha256
            .clone()
            .map(|_| { hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"d")) })
    );
}

#[test]
fn permissions_ownership_and_special_bits_are_kept() {
    let (_work, root) = same_as_umoci(vec![
        Layer::new()
            .dir_mode("tmp", 0o1777)
            .dir("usr")
            .dir("usr/bin")
            .file_full("usr/bin/su", b"#!", 0o4755, 0, 0)
            .file_full("usr/bin/wall", b"#!", 0o2755, 0, 5)
            .file_full("home-file", b"secret", 0o600, 1000, 1000)
            .dir_mode("ro", 0o555)
            .file("ro/inside", "r"),
    ]);
    assert_eq!(snapshot(&root)["usr/bin/su"].mode, 0o4755);
}

#[test]
fn pax_long_names_and_device_nodes() {
    let dir = "p".repeat(120);
    let long = format!("{dir}/{}", "q".repeat(130));
    let (_work, root) = same_as_umoci(vec![
        Layer::new()
            .dir(&dir)
            .pax_entry(&long, None, "pax content")
            .pax_entry(
                &format!("{dir}/link-{}", "r".repeat(100)),
                Some(&"t".repeat(150)),
                "",
            )
            .dir("dev")
            .chardev("dev/null", 1, 3),
    ]);
    let tree = snapshot(&root);
    assert_eq!(tree[&long].size, "pax content".len() as u64);
    assert_eq!(tree["dev/null"].kind, "chardev");
}

#[test]
fn extended_attributes_and_file_capabilities() {
    // cap_net_raw in the permitted and effective sets, as on `ping`.
    let capability: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let (_work, root) = same_as_umoci(vec![
        Layer::new()
            .dir("bin")
            .file_xattrs("bin/ping", "elf", &[("security.capability", capability)])
            .file_xattrs("note", "n", &[("user.origin", b"layer 0")]),
    ]);
    let tree = snapshot(&root);
    assert_eq!(
        tree["bin/ping"].xattrs,
        [("security.capability".to_owned(), capability.to_vec())]
    );
}

#[test]
fn long_names_fifos_and_empty_layers() {
    let long_dir = "d".repeat(90);
    let long_file = format!("{long_dir}/{}", "f".repeat(120));
    same_as_umoci(vec![
        Layer::new()
            .dir(&long_dir)
            .file(&long_file, "long")
            .symlink("to-long", &long_file)
            .fifo("pipe"),
        Layer::new(),
        Layer::new().hardlink(&format!("{long_dir}/{}", "h".repeat(110)), &long_file),
    ]);
}

/// umoci 0.4 reads no zstd layers: zstd and plain-tar images are compared
/// with the same image in gzip, which is compared with umoci above.
#[test]
fn zstd_and_uncompressed_layers_unpack_like_gzip() {
    let layers = |compress| {
        vec![
            Layer::new().dir("a").file("a/x", "x").compressed(compress),
            Layer::new()
                .whiteout("a/x")
                .file("a/y", "y")
                .compressed(compress),
        ]
    };
    let work = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for (name, compress) in [
        ("gz", Compress::Gzip),
        ("zst", Compress::Zstd),
        ("tar", Compress::None),
    ] {
        let layout = write_layout(
            &work.path().join(name),
            TAG,
            layers(compress),
            Corrupt::Nothing,
        );
        let dest = work.path().join(format!("{name}-out"));
        ours(&format!("oci:{}:{TAG}", layout.display()), &dest).unwrap();
        trees.push(snapshot(&dest));
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert!(trees[0].contains_key("a/y") && !trees[0].contains_key("a/x"));
}

#[test]
fn more_whiteout_and_link_cases() {
    same_as_umoci(vec![
        Layer::new()
            .dir("a")
            .file("a/f", "1")
            .symlink("s", "a/f")
            .hardlink("s2", "s")
            .dir("top")
            .file("top/x", "x"),
        Layer::new()
            .whiteout("a")
            .dir("a")
            .file("a/g", "2")
            .opaque("")
            .file("kept", "k"),
    ]);
}

#[test]
fn implicit_parent_directories() {
    same_as_umoci(vec![
        Layer::new().file("x/y/z", "deep"),
        Layer::new().file("x/y/w", "more"),
    ]);
}

#[test]
fn paths_through_symlinks_stay_inside_the_root() {
    same_as_umoci(vec![
        Layer::new()
            .dir("usr")
            .dir("usr/lib")
            .symlink("lib", "/usr/lib"),
        Layer::new().file("lib/libx.so", "x"),
    ]);
}

fn assert_refused(layers: Vec<Layer>, corrupt: Corrupt, expect: &str) {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(&work.path().join("layout"), TAG, layers, corrupt);
    let dest = work.path().join("dest");
    let error = ours(&format!("oci:{}:{TAG}", layout.display()), &dest).unwrap_err();
    assert!(error.to_string().contains(expect), "{error}");
    assert!(!dest.exists(), "nothing may be left at the destination");
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "layout")
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn symlink_escapes_fail_naming_layer_and_path() {
    assert_refused(
        vec![
            Layer::new().symlink("up", "../../../../etc"),
            Layer::new().file("up/passwd", "pwned"),
        ],
        Corrupt::Nothing,
        "layer 1: entry \"up/passwd\" would write outside the destination",
    );
    assert_refused(
        vec![
            Layer::new().symlink("up", ".."),
            Layer::new().hardlink("stolen", "up/etc/shadow"),
        ],
        Corrupt::Nothing,
        "would write outside the destination",
    );
}

#[test]
fn dot_dot_and_absolute_entries_fail() {
    assert_refused(
        vec![Layer::new().raw_file("a/../../escape", "x")],
        Corrupt::Nothing,
        "`..` component",
    );
    assert_refused(
        vec![Layer::new().raw_file("/etc/cron.d/x", "x")],
        Corrupt::Nothing,
        "absolute path",
    );
}

#[test]
fn digest_mismatches_fail_and_leave_nothing() {
    let layers = || {
        vec![
            Layer::new().file("a", "content"),
            Layer::new().file("b", "more"),
        ]
    };
    assert_refused(layers(), Corrupt::Blob, "layer 0 blob: digest mismatch");
    assert_refused(
        layers(),
        Corrupt::DiffId,
        "layer 0 diff_id: digest mismatch",
    );
}
