//! Per-job rootless Docker (`gha_runner_launcher::docker`) for real: Debian's
//! `dockerd-rootless.sh` as the unprivileged `gha-runner` user (created with
//! its subordinate ids by `deploy/local/install-deps`), a container run
//! through the job's socket from an image made with `docker import` of a
//! busybox root filesystem (no registry pull), and `stop` leaving no process
//! and no file behind, without touching another job's daemon of the same
//! user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use gha_runner_launcher::docker::{
    DockerConfig, DockerError, DockerNetwork, RootlessDocker, RunAs, processes_in_namespace,
};

/// The user install-deps gives subordinate ids for these tests.
const USER: &str = "gha-runner";

fn id(flag: &str) -> u32 {
    let output = Command::new("id").args([flag, USER]).output().unwrap();
    assert!(
        output.status.success(),
        "no user {USER}: run deploy/local/install-deps"
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

fn config(network: DockerNetwork) -> DockerConfig {
    let as_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    DockerConfig {
        run_as: as_root.then(|| RunAs {
            uid: id("-u"),
            gid: id("-g"),
        }),
        network,
        start_timeout: Duration::from_secs(60),
        ..DockerConfig::default()
    }
}

/// A directory the daemon's user can reach: `<tmp 0755>/docker`.
fn job_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("gha-job-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("docker");
    (tmp, dir)
}

/// `docker <args>` against `daemon`, with `stdin` fed in.
fn docker(daemon: &RootlessDocker, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let mut child = Command::new("docker")
        .env("DOCKER_HOST", daemon.docker_host())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the docker CLI (docker.io)");
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A tar of a root filesystem with busybox as /bin/sh, /bin/echo, /bin/sleep.
fn tiny_rootfs_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (install-deps)");
    let mut header = tar::Header::new_gnu();
    header.set_size(busybox.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder
        .append_data(&mut header, "bin/busybox", busybox.as_slice())
        .unwrap();
    for applet in ["sh", "echo", "sleep", "cat"] {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        builder
            .append_link(&mut link, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
    })
}

fn user_namespace(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/user"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn a_container_runs_through_the_jobs_socket_and_stop_leaves_nothing() {
    let (_tmp, dir) = job_dir();
    let daemon = RootlessDocker::start(&dir, &config(DockerNetwork::Auto))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(daemon.socket().starts_with(&dir));
    ok(&docker(
        &daemon,
        &["import", "-", "tiny:1"],
        Some(tiny_rootfs_tar()),
    ));
    let hello = ok(&docker(
        &daemon,
        &[
            "run",
            "--rm",
            "tiny:1",
            "/bin/sh",
            "-c",
            "echo hello from $(cat /proc/self/comm)",
        ],
        None,
    ));
    assert_eq!(hello, "hello from cat");

    // A container still running when the job ends.
    let id = ok(&docker(
        &daemon,
        &["run", "-d", "tiny:1", "/bin/sleep", "600"],
        None,
    ));
    let pid: i32 = ok(&docker(
        &daemon,
        &["inspect", "-f", "{{.State.Pid}}", &id],
        None,
    ))
    .parse()
    .unwrap();
    assert!(alive(pid));
    let namespace = user_namespace(pid);
    assert!(!processes_in_namespace(&namespace).is_empty());

    daemon.stop().await.unwrap();
    assert!(!alive(pid), "the container outlived stop");
    assert_eq!(processes_in_namespace(&namespace), Vec::<i32>::new());
    assert!(!dir.exists(), "the daemon's data is left");
}

#[tokio::test]
async fn a_bwrap_container_of_the_daemons_user_reaches_it_at_run_gha_docker_sock() {
    let (_tmp, dir) = job_dir();
    let config = config(DockerNetwork::Auto);
    let daemon = RootlessDocker::start(&dir, &config).await.unwrap();
    // The runner's container runs as the daemon's user outside, as a Slurm
    // job does (root, with caps only in its own namespace, could not even
    // resolve the socket inside the 0700 runtime directory).
    let mut command = match config.run_as {
        Some(user) => {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .args(["--clear-groups", "bwrap"]);
            setpriv
        }
        None => Command::new("bwrap"),
    };
    let socket = daemon.socket().to_str().unwrap().to_owned();
    let output = command
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--uid",
            "1001",
            "--gid",
            "1001",
        ])
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        // `/` is read-only here, as the image is: the mount point needs a
        // tmpfs /run.
        .args(["--tmpfs", "/run", "--bind", &socket, "/run/gha-docker.sock"])
        .arg("--die-with-parent")
        .args(["--", "docker", "version", "-f", "{{.Server.Os}}"])
        .env("DOCKER_HOST", "unix:///run/gha-docker.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(ok(&output), "linux");
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn two_jobs_of_one_user_get_two_daemons_and_stopping_one_spares_the_other() {
    let (_tmp_a, dir_a) = job_dir();
    let (_tmp_b, dir_b) = job_dir();
    let config = config(DockerNetwork::Auto);
    let (a, b) = tokio::join!(
        RootlessDocker::start(&dir_a, &config),
        RootlessDocker::start(&dir_b, &config)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    ok(&docker(
        &a,
        &["import", "-", "only-a:1"],
        Some(tiny_rootfs_tar()),
    ));
    let images_b = ok(&docker(&b, &["images", "-q", "only-a"], None));
    assert!(images_b.is_empty(), "b sees a's image: {images_b}");

    a.stop().await.unwrap();
    assert_eq!(
        ok(&docker(&b, &["version", "-f", "{{.Server.Os}}"], None)),
        "linux"
    );
    b.stop().await.unwrap();
    assert!(!dir_a.exists() && !dir_b.exists());
}

#[tokio::test]
async fn slirp4netns_needs_a_usable_tun_device_and_says_so_when_it_is_not() {
    let (_tmp, dir) = job_dir();
    let tun = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode() & 0o777);
    match RootlessDocker::start(&dir, &config(DockerNetwork::Slirp4netns)).await {
        Ok(daemon) => {
            ok(&docker(
                &daemon,
                &["import", "-", "tiny:1"],
                Some(tiny_rootfs_tar()),
            ));
            let out = ok(&docker(
                &daemon,
                &["run", "--rm", "tiny:1", "/bin/echo", "net"],
                None,
            ));
            assert_eq!(out, "net");
            daemon.stop().await.unwrap();
        }
        Err(DockerError::Exited { log, .. }) => {
            assert!(
                matches!(tun, Ok(mode) if mode & 0o006 != 0o006),
                "slirp4netns failed with a usable tun device ({tun:?}):\n{log}"
            );
            assert!(log.contains("setting up tap tap0"), "{log}");
            assert!(log.contains("open: Permission denied"), "{log}");
            assert!(!dir.exists(), "a failed start leaves its directory");
        }
        Err(other) => panic!("{other}"),
    }
    assert!(!Path::new(&dir).join("run/docker.sock").exists());
}
