"""Dependency audit for CI: known vulnerabilities in the installed environment fail the run.

Runs ``pip-audit`` over the environment this interpreter belongs to (the project itself, installed
editable, is left out). pip-audit asks PyPI for each installed release
(``/pypi/<name>/<version>/json``); where that answer cannot be had (a mirror that serves only the
project documents), the release is checked against the project document (``/pypi/<name>/json``)
instead, whose ``vulnerabilities`` are those of the newest release: exact when the installed
release is the newest one, which is what a fresh install resolves to. A release neither source
covers is listed as not audited.

Exit 1: a known vulnerability (not withdrawn) in an installed release. Exit 0 otherwise; when no
vulnerability data could be reached at all, a loud warning says nothing was audited. Stdlib only; network only to PyPI, in this CI step alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

PYPI = "https://pypi.org/pypi"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    return {canonical(dist.metadata["Name"] or ""): dist.version for dist in metadata.distributions()}


def pip_audit() -> list[dict]:
    tool = Path(sys.executable).with_name("pip-audit")
    done = subprocess.run(
        [str(tool), "-f", "json", "--skip-editable", "--progress-spinner", "off"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return list(json.loads(done.stdout)["dependencies"])
    except (ValueError, KeyError):
        print(f"pip-audit gave no report (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return [{"name": name, "skip_reason": "pip-audit gave no report"} for name in installed()]


def project_vulnerabilities(name: str, version: str) -> list[dict] | None:
    """The known vulnerabilities of ``name==version`` from the project document, or None when it
    cannot say (unreachable, or ``version`` is not the newest release)."""
    try:
        with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=30) as answer:  # noqa: S310 (https)
            doc = json.load(answer)
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None
    if doc.get("info", {}).get("version") != version:
        return None
    return [v for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")]


def main() -> int:
    versions = installed()
    found: list[str] = []
    unaudited: list[str] = []
    audited = 0
    for dep in pip_audit():
        name = canonical(dep["name"])
        version = dep.get("version") or versions.get(name, "?")
        if "skip_reason" not in dep:
            audited += 1
            vulns = dep.get("vulns") or []
        else:
            if name == "broker":
                continue
            fallback = project_vulnerabilities(name, version)
            if fallback is None:
                unaudited.append(f"{name}=={version}")
                continue
            audited += 1
            vulns = [{"id": v.get("id"), "fix_versions": v.get("fixed_in") or []} for v in fallback]
        for v in vulns:
            fixed = ", ".join(v.get("fix_versions") or []) or "no fixed release"
            found.append(f"{name}=={version}: {v.get('id')} (fixed in: {fixed})")
    print(f"dependency audit: {audited} releases audited, {len(found)} known vulnerabilities")
    if unaudited:
        print(f"not audited (no vulnerability data reachable for these releases): {', '.join(unaudited)}")
    for line in found:
        print(f"  VULNERABLE {line}")
    if audited == 0:
        # No vulnerability data reachable from this machine: say so loudly, but an outage of the
        # data source is not a known vulnerability and does not fail the build.
        print("WARNING dependency audit: nothing could be audited (no vulnerability service reachable)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
