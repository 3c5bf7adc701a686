//! The daemon's command line and environment, free of I/O: where each of
//! its directories goes inside the job's `dir`, dockerd's flags and
//! `dockerd-rootless.sh`'s variables for the chosen network.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{DockerConfig, DockerNetwork};

/// The directories of one daemon inside its `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonLayout {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub runtime: PathBuf,
    pub data: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

impl DaemonLayout {
    pub fn new(dir: &Path) -> Self {
        let runtime = dir.join("run");
        Self {
            dir: dir.to_path_buf(),
            home: dir.join("home"),
            data: dir.join("data"),
            socket: runtime.join("docker.sock"),
            pidfile: runtime.join("docker.pid"),
            log: dir.join("dockerd.log"),
            runtime,
        }
    }
}

/// The network to use: `Auto` resolves by whether the tun device is usable.
pub fn resolve_network(choice: DockerNetwork, tun_usable: bool) -> DockerNetwork {
    match choice {
        DockerNetwork::Auto if tun_usable => DockerNetwork::Slirp4netns,
        DockerNetwork::Auto => DockerNetwork::Host,
        other => other,
    }
}

/// dockerd's flags, passed through `dockerd-rootless.sh`.
pub fn dockerd_args(
    layout: &DaemonLayout,
    config: &DockerConfig,
    network: DockerNetwork,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: &Path| {
        args.push(name.into());
        args.push(value.as_os_str().to_owned());
    };
    flag("--data-root", &layout.data);
    flag("--exec-root", &layout.runtime.join("docker"));
    flag("--pidfile", &layout.pidfile);
    let mut host = OsString::from("unix://");
    host.push(&layout.socket);
    args.extend(["--host".into(), host]);
    args.extend(["--exec-opt".into(), "native.cgroupdriver=cgroupfs".into()]);
    // Containers get 2 s to stop when the job ends.
    args.extend(["--shutdown-timeout".into(), "2".into()]);
    if network == DockerNetwork::Host {
        args.extend(["--bridge=none".into(), "--iptables=false".into()]);
    }
    if let Some(driver) = &config.storage_driver {
        args.extend(["--storage-driver".into(), driver.into()]);
    }
    args.extend(config.extra_args.iter().map(OsString::from));
    args
}

/// The daemon's whole environment: nothing of the launcher's.
pub fn daemon_env(
    layout: &DaemonLayout,
    config: &DockerConfig,
    network: DockerNetwork,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), config.path.clone()),
        ("HOME".into(), layout.home.clone().into()),
        ("XDG_RUNTIME_DIR".into(), layout.runtime.clone().into()),
    ];
    let (net, port_driver) = match network {
        DockerNetwork::Host => ("host", "none"),
        _ => ("slirp4netns", "builtin"),
    };
    env.push(("DOCKERD_ROOTLESS_ROOTLESSKIT_NET".into(), net.into()));
    env.push((
        "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER".into(),
        port_driver.into(),
    ));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn everything_of_the_daemon_is_inside_its_dir() {
        let layout = DaemonLayout::new(Path::new("/tmp/gha-42/docker"));
        let args = strings(&dockerd_args(
            &layout,
            &DockerConfig::default(),
            DockerNetwork::Slirp4netns,
        ));
        assert_eq!(
            args,
            [
                "--data-root",
                "/tmp/gha-42/docker/data",
                "--exec-root",
                "/tmp/gha-42/docker/run/docker",
                "--pidfile",
                "/tmp/gha-42/docker/run/docker.pid",
                "--host",
                "unix:///tmp/gha-42/docker/run/docker.sock",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--shutdown-timeout",
                "2",
            ]
        );
        let env = daemon_env(
            &layout,
            &DockerConfig::default(),
            DockerNetwork::Slirp4netns,
        );
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("HOME").unwrap(), "/tmp/gha-42/docker/home");
        assert_eq!(get("XDG_RUNTIME_DIR").unwrap(), "/tmp/gha-42/docker/run");
        assert_eq!(
            get("DOCKERD_ROOTLESS_ROOTLESSKIT_NET").unwrap(),
            "slirp4netns"
        );
    }

    #[test]
    fn the_host_network_has_no_bridge_no_iptables_and_no_port_driver() {
        let layout = DaemonLayout::new(Path::new("/w/docker"));
        let config = DockerConfig {
            storage_driver: Some("vfs".into()),
            ..DockerConfig::default()
        };
        let args = strings(&dockerd_args(&layout, &config, DockerNetwork::Host));
        assert!(args.ends_with(&[
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--storage-driver".into(),
            "vfs".into()
        ]));
        let env = daemon_env(&layout, &config, DockerNetwork::Host);
        assert!(env.contains(&("DOCKERD_ROOTLESS_ROOTLESSKIT_NET".into(), "host".into())));
        assert!(env.contains(&(
            "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER".into(),
            "none".into()
        )));
    }

    #[test]
    fn auto_takes_slirp4netns_only_with_a_usable_tun_device() {
        assert_eq!(
            resolve_network(DockerNetwork::Auto, true),
            DockerNetwork::Slirp4netns
        );
        assert_eq!(
            resolve_network(DockerNetwork::Auto, false),
            DockerNetwork::Host
        );
        assert_eq!(
            resolve_network(DockerNetwork::Slirp4netns, false),
            DockerNetwork::Slirp4netns
        );
    }
}
