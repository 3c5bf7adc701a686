//! The planner on hand-made entries: whiteouts, opaque directories,
//! replacement, hard links and path safety, without any I/O.

use super::*;

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 1,
    }
}

fn e(path: &str, kind: Kind) -> Entry {
    Entry {
        path: path.into(),
        kind,
        meta: meta(0o644),
        xattrs: Vec::new(),
    }
}

fn file(path: &str) -> Entry {
    e(path, Kind::File { size: 1 })
}

fn d(path: &str) -> Entry {
    e(path, Kind::Dir)
}

fn plan(layers: &[Vec<Entry>]) -> Result<Tree, PlanError> {
    let mut plan = Plan::default();
    for (layer, entries) in layers.iter().enumerate() {
        for (index, entry) in entries.iter().enumerate() {
            plan.apply(layer, index, entry)?;
        }
    }
    Ok(plan.finish())
}

fn paths(tree: &Tree) -> Vec<String> {
    let mut all: Vec<String> = tree
        .dirs
        .iter()
        .map(|d| format!("{}/", d.path))
        .chain(tree.files.iter().flat_map(|f| f.names.clone()))
        .collect();
    all.sort();
    all
}

#[test]
fn a_whiteout_hides_lower_layers_only() {
    let tree = plan(&[
        vec![d("a"), file("a/x"), file("a/y"), d("b"), file("b/z")],
        vec![
            file("a/x"),
            e("a/.wh.x", Kind::Dir),
            file("a/.wh.y"),
            file(".wh.b"),
        ],
    ])
    .unwrap();
    assert_eq!(paths(&tree), ["/", "a/", "a/x"]);
    assert_eq!(
        tree.files[0].inode.layer, 1,
        "the same layer's a/x survives"
    );
}

#[test]
fn an_opaque_marker_hides_lower_children_wherever_it_appears() {
    for marker_first in [true, false] {
        let marker = file("d/.wh..wh..opq");
        let mut upper = vec![d("d"), file("d/new"), d("d/sub"), file("d/sub/n")];
        if marker_first {
            upper.insert(0, marker);
        } else {
            upper.push(marker);
        }
        let tree = plan(&[
            vec![d("d"), file("d/old"), d("d/sub"), file("d/sub/old")],
            upper,
        ])
        .unwrap();
        assert_eq!(
            paths(&tree),
            ["/", "d/", "d/new", "d/sub/", "d/sub/n"],
            "marker first: {marker_first}"
        );
    }
}

#[test]
fn types_replace_each_other() {
    let tree = plan(&[
        vec![file("f"), d("dir"), file("dir/inner")],
        vec![
            d("f"),
            file("f/child"),
            e("dir", Kind::Symlink { target: "f".into() }),
        ],
    ])
    .unwrap();
    assert_eq!(paths(&tree), ["/", "dir", "f/", "f/child"]);
}

#[test]
fn hard_links_keep_the_inode_their_target_had() {
    let tree = plan(&[
        vec![file("a"), e("b", Kind::HardLink { target: "a".into() })],
        vec![file("a"), e("c", Kind::HardLink { target: "b".into() })],
        vec![file(".wh.a")],
    ])
    .unwrap();
    assert_eq!(tree.files.len(), 1);
    assert_eq!(tree.files[0].names, ["b", "c"]);
    assert_eq!(
        (tree.files[0].inode.layer, tree.files[0].inode.entry),
        (0, 0)
    );
}

#[test]
fn paths_through_symlinks_resolve_inside_the_root_or_fail() {
    let tree = plan(&[
        vec![
            d("usr"),
            d("usr/lib"),
            e(
                "lib",
                Kind::Symlink {
                    target: "/usr/lib".into(),
                },
            ),
        ],
        vec![file("lib/x")],
    ])
    .unwrap();
    assert!(paths(&tree).contains(&"usr/lib/x".to_owned()));
    let escape = plan(&[
        vec![e(
            "up",
            Kind::Symlink {
                target: "../../etc".into(),
            },
        )],
        vec![file("up/passwd")],
    ])
    .unwrap_err();
    assert!(escape.escapes, "{escape}");
    let link_escape = plan(&[
        vec![e(
            "up",
            Kind::Symlink {
                target: "..".into(),
            },
        )],
        vec![e(
            "x",
            Kind::HardLink {
                target: "up/etc/passwd".into(),
            },
        )],
    ])
    .unwrap_err();
    assert!(link_escape.escapes, "{link_escape}");
}
