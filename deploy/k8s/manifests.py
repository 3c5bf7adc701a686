#!/usr/bin/env python3
"""What a schema cannot see in deploy/k8s: the manifests match the binaries
and each other.

    manifests.py BIN_DIR

- every GHA_* variable and --flag a container sets is one its binary's
  `--help` lists (gha-poller run, gha-scheduler run; munged's own flags
  against the host's `munged --help`); other variables are known ones;
- every file a variable or flag names (GHA_*_FILE, GHA_SCHEDULER_POLICY,
  SLURM_CONF, --key-file) lies in a volume the container mounts, and the
  Secret or ConfigMap item it comes from exists;
- probes use declared ports; every container has requests and limits, runs
  non-root, read-only, without privilege escalation or capabilities;
- the kustomization lists every manifest but the secrets example, and
  names the images the Deployments use;
- the policy ConfigMap loads (`gha-scheduler explain`) and the slurm.conf
  ConfigMap parses (`sbatch --version` with it as SLURM_CONF).
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
BINARIES = {"slurm-actions/gha-poller": "gha-poller", "slurm-actions/gha-scheduler": "gha-scheduler"}
# Variables that are not ours but the tools': read by Slurm's commands.
KNOWN_ENV = {"SLURM_CONF"}
# Flags whose value is a file the container must have mounted.
FILE_FLAGS = {"--key-file"}
problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("GHA_")}


def help_text(command):
    run = subprocess.run(command, capture_output=True, text=True, env=clean_env())
    if run.returncode != 0:
        raise SystemExit(f"manifests: {' '.join(command)} failed: {run.stderr}")
    return run.stdout + run.stderr


def check_container(where, container, pod, configmaps, bin_dir):
    image = container["image"].split(":")[0]
    args = container.get("args", [])
    command = container.get("command")
    if command is None:
        binary = BINARIES.get(image)
        if binary is None:
            problem(where, f"image {image} is not one of ours")
            return
        help = help_text([str(bin_dir / binary), *args[:1], "--help"])
        flags = args[1:]
    elif command == ["/usr/sbin/munged"]:
        help = help_text(["munged", "--help"])
        flags = args
    else:
        problem(where, f"unknown command {command}")
        return

    for arg in flags:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            if not re.search(rf"(^|[\s,]){re.escape(flag)}([=\s\[]|$)", help, re.M):
                problem(where, f"{flag} is not a flag of {command or image} (its --help)")

    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    def check_file(what, path):
        found = [p for p in mounts if path.startswith(p.rstrip("/") + "/")]
        if not found:
            problem(where, f"{what}={path}: no volume mounted there")
            return
        mount = max(found, key=len)
        volume = volumes.get(mounts[mount])
        if volume is None:
            problem(where, f"{what}: volume {mounts[mount]} is not declared")
            return
        item = path[len(mount.rstrip("/")) + 1:]
        source = volume.get("secret") or volume.get("configMap")
        if source is None:
            return
        items = source.get("items")
        if items is not None:
            if item not in [i["path"] for i in items]:
                problem(where, f"{what}={path}: volume {volume['name']} has no item {item}")
        if "configMap" in volume:
            data = configmaps.get(volume["configMap"]["name"])
            key = next((i["key"] for i in items or [] if i["path"] == item), item)
            if data is None or key not in data:
                problem(where, f"{what}={path}: ConfigMap {volume['configMap']['name']} has no key {key}")

    for env in container.get("env", []):
        name, value = env["name"], env.get("value", "")
        if name.startswith("GHA_"):
            if command is not None or not re.search(rf"\[env: {re.escape(name)}[=\]]", help):
                problem(where, f"{name} is not a variable {image} reads (its --help)")
        elif name not in KNOWN_ENV:
            problem(where, f"{name}: an unknown variable")
        if name.endswith("_FILE") or name in {"GHA_SCHEDULER_POLICY", "SLURM_CONF"}:
            check_file(name, value)
    for arg in flags:
        flag, _, value = arg.partition("=")
        if flag in FILE_FLAGS:
            check_file(flag, value)

    ports = {p["name"] for p in container.get("ports", [])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        port = container.get(probe, {}).get("httpGet", {}).get("port")
        if port is not None and port not in ports:
            problem(where, f"{probe} uses port {port!r}, not declared")
    if command is None and "livenessProbe" not in container:
        problem(where, "no liveness probe on /healthz")

    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(kind, {}):
                problem(where, f"no {kind}.{resource}")
    security = container.get("securityContext", {})
    if security.get("readOnlyRootFilesystem") is not True:
        problem(where, "root filesystem not read-only")
    if security.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation is not false")
    if security.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(where, "capabilities not dropped")
    run_as = security.get("runAsUser", pod.get("securityContext", {}).get("runAsUser"))
    if not run_as:
        problem(where, "runs as root (no runAsUser)")


def main(bin_dir):
    manifests = sorted(HERE.glob("*.yaml"))
    resources = {}
    for path in manifests:
        if path.name != "kustomization.yaml":
            resources[path.name] = documents(path)
    configmaps = {
        doc["metadata"]["name"]: doc.get("data", {})
        for docs in resources.values() for doc in docs if doc["kind"] == "ConfigMap"
    }

    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for name in sorted(set(resources) - listed - {"secrets.example.yaml"}):
        problem("kustomization.yaml", f"{name} is not listed in resources")
    for name in sorted(listed - set(resources)):
        problem("kustomization.yaml", f"lists {name}, which does not exist")
    if "secrets.example.yaml" in listed:
        problem("kustomization.yaml", "secrets.example.yaml must not be applied")
    images = {image["name"] for image in kustomization.get("images", [])}

    deployments = 0
    for name, docs in resources.items():
        for doc in docs:
            if doc["kind"] != "Deployment":
                continue
            deployments += 1
            pod = doc["spec"]["template"]["spec"]
            pod_security = pod.get("securityContext", {})
            if pod_security.get("runAsNonRoot") is not True:
                problem(name, "pod without runAsNonRoot")
            if doc["spec"].get("replicas") != 1 or doc["spec"].get("strategy", {}).get("type") != "Recreate":
                problem(name, "one replica, Recreate: two at once are not safe yet")
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = f"{name}: {doc['metadata']['name']}/{container['name']}"
                if container["image"].split(":")[0] not in images:
                    problem(where, f"image {container['image']} not in the kustomization's images")
                check_container(where, container, pod, configmaps, bin_dir)
    if deployments != 2:
        problem("deploy/k8s", f"{deployments} Deployments, expected poller and scheduler")

    with tempfile.TemporaryDirectory() as tmp:
        policy = pathlib.Path(tmp, "policy.toml")
        policy.write_text(configmaps["gha-scheduler-policy"]["policy.toml"])
        run = subprocess.run(
            [str(bin_dir / "gha-scheduler"), "explain", "--policy", str(policy), "--labels", "self-hosted,slurm"],
            capture_output=True, text=True, env=clean_env())
        if run.returncode != 0:
            problem("config.yaml", f"the policy does not load or place a job: {run.stderr.strip()}")
        conf = pathlib.Path(tmp, "slurm.conf")
        conf.write_text(configmaps["gha-slurm-config"]["slurm.conf"])
        run = subprocess.run(["sbatch", "--version"], capture_output=True, text=True,
                             env={**clean_env(), "SLURM_CONF": str(conf)})
        if run.returncode != 0:
            problem("config.yaml", f"slurm.conf does not parse: {run.stderr.strip()}")

    for text in problems:
        print(f"k8s: {text}", file=sys.stderr)
    if problems:
        return 1
    print(f"k8s: {len(resources)} manifests agree with the binaries and each other", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    sys.exit(main(pathlib.Path(sys.argv[1])))
