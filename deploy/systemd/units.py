#!/usr/bin/env python3
"""What systemd-analyze cannot see in deploy/systemd: the units match the
binaries.

    units.py BIN_DIR

- every GHA_* variable a unit, its drop-in or its example env file sets is
  one the binary of ExecStart lists in `--help` (for its subcommand);
- every %d/<id> path names a credential the unit loads (LoadCredential=),
  and every secret-holding variable (GHA_*_FILE naming a token, secret,
  key or creds) comes from a credential, not a plain file;
- the units harden what the issue asks: a service or dynamic user,
  ProtectSystem=strict, NoNewPrivileges=yes (the CVMFS drop-in aside,
  which says why).
"""

import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
problems = []


def settings(path):
    """(key, value) pairs of a unit or drop-in, in order."""
    pairs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def env_file(path):
    pairs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            pairs.append((name, value))
    return pairs


def help_text(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHA_")}
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise SystemExit(f"units: {' '.join(command)} failed: {run.stderr}")
    return run.stdout


def check_unit(unit, extra):
    pairs = settings(unit) + [pair for path in extra for pair in settings(path)]
    where = unit.name
    values = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    exec_start = values["ExecStart"][0].split()
    binary = pathlib.Path(exec_start[0]).name
    help = help_text([str(BIN_DIR / binary), *exec_start[1:], "--help"])
    credentials = {value.split(":", 1)[0] for value in values.get("LoadCredential", [])}

    env = []
    for value in values.get("Environment", []):
        name, _, setting = value.partition("=")
        env.append((name, setting, where))
    name = unit.stem.removeprefix("gha-")
    example = HERE / f"{name}.env.example"
    if not example.exists():
        problems.append(f"{where}: no {example.name} beside it")
    else:
        env += [(n, v, example.name) for n, v in env_file(example)]
        if f"/etc/slurm-actions/{name}.env" not in values.get("EnvironmentFile", []):
            problems.append(f"{where}: EnvironmentFile is not /etc/slurm-actions/{name}.env")
    for name, setting, source in env:
        if name.startswith("GHA_") and not re.search(rf"\[env: {re.escape(name)}[=\]]", help):
            problems.append(f"{source}: {name} is not a variable {binary} {' '.join(exec_start[1:])} reads")
        for credential in re.findall(r"%d/([\w.-]+)", setting):
            if credential not in credentials:
                problems.append(f"{source}: {name} names credential {credential}, not loaded")
        secret = re.search(r"(TOKEN|SECRET|KEY|CREDS|NKEY)_FILE$", name)
        if secret and not setting.startswith("%d/"):
            problems.append(f"{source}: {name}={setting}: a secret not passed as a credential")

    def wanted(key, allowed):
        if values.get(key, [None])[-1] not in allowed:
            problems.append(f"{where}: {key} is {values.get(key, ['unset'])[-1]}, wanted {allowed}")

    if not ("User" in values or values.get("DynamicUser") == ["yes"]):
        problems.append(f"{where}: neither User= nor DynamicUser=yes")
    if not extra:
        wanted("ProtectSystem", ["strict"])
        wanted("NoNewPrivileges", ["yes"])


BIN_DIR = pathlib.Path(sys.argv[1]) if len(sys.argv) == 2 else None
if BIN_DIR is None:
    print(__doc__, file=sys.stderr)
    sys.exit(64)
units = sorted(HERE.glob("*.service"))
for unit in units:
    check_unit(unit, [])
check_unit(HERE / "gha-unpacker.service", [HERE / "gha-unpacker-cvmfs.conf"])
for text in problems:
    print(f"systemd: {text}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"systemd: {len(units)} units and the CVMFS drop-in set only variables the binaries read", file=sys.stderr)
