#!/usr/bin/env python3
"""Every alert of rules/ is unit-tested firing and quiet in tests/, and its
`runbook` annotation names a section of docs/operations.md that exists.

    coverage.py
"""

import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


alerts = {}
for path in sorted((HERE / "rules").glob("*.yml")):
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                alerts[rule["alert"]] = rule

fires, quiet = set(), set()
for path in sorted((HERE / "tests").glob("*.yml")):
    for test in yaml.safe_load(path.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])

operations = (ROOT / "docs/operations.md").read_text()
anchors = {slug(line.lstrip("#")) for line in operations.splitlines() if line.startswith("#")}

problems = []
for name, rule in alerts.items():
    if name not in fires:
        problems.append(f"{name}: no test where it fires")
    if name not in quiet:
        problems.append(f"{name}: no test where it stays quiet")
    runbook = rule.get("annotations", {}).get("runbook", "")
    page, _, anchor = runbook.partition("#")
    if page != "docs/operations.md" or anchor not in anchors:
        problems.append(f"{name}: runbook {runbook!r} is not a section of docs/operations.md")
for name in sorted((fires | quiet) - set(alerts)):
    problems.append(f"tests name {name}, which no rule defines")
for problem in problems:
    print(f"prometheus: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"prometheus: {len(alerts)} alerts, each tested firing and quiet, each with its runbook",
      file=sys.stderr)
