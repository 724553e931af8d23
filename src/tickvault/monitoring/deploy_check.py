"""Validate the monitoring configuration under ``deploy/`` and report problems as ``file:line``.

Runs the servers' own validators (``promtool check config`` / ``check rules``, ``amtool
check-config``) and parses the Grafana JSON, then turns each complaint into one
:class:`Problem` naming the file and, where it can be found, the line. Used by
``tickvault monitoring check`` and by the tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_LINE_PATTERNS = (
    re.compile(r"\byaml: line (\d+):"),
    re.compile(r"\bline (\d+):"),
    re.compile(r"\.ya?ml: (\d+):\d+:"),
)
_QUOTED = re.compile(r'"([^"]+)"')


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


def _line_of(path: Path, message: str) -> int | None:
    """The line a validator's message points at: its own line number, else the first line
    holding the quoted value it complains about (promtool omits lines for bad durations)."""
    for pattern in _LINE_PATTERNS:
        match = pattern.search(message)
        if match:
            return int(match.group(1))
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for quoted in _QUOTED.findall(message):
        for number, text in enumerate(lines, start=1):
            if quoted in text:
                return number
    return None


def _run(tool: str, args: list[str], path: Path) -> list[Problem]:
    exe = shutil.which(tool)
    if exe is None:
        return [Problem(path, None, f"{tool} is not installed; cannot validate this file")]
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30, check=False)
    if out.returncode == 0:
        return []
    problems: list[Problem] = []
    text = (out.stderr + "\n" + out.stdout).replace("\n     ", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Checking") and "FAILED:" in line:
            line = line.split("FAILED:", 1)[1]
        if not line or line.startswith(("Checking", "SUCCESS", "amtool: error", "Found:", "- ")):
            continue
        line = re.sub(r"^(FAILED:?\s*)+", "", line).strip()
        if not line or line == "FAILED":
            continue
        target = _file_in(line) or path
        line = line.removeprefix(f"{target}:").strip()
        problems.append(Problem(target, _line_of(target, line), line))
    return problems or [Problem(path, None, f"{tool} failed: {text.strip()[:500]}")]


def _file_in(message: str) -> Path | None:
    match = re.search(r"([^\s'\"]+\.ya?ml)(?=[:\s'\"])", message)
    if match and Path(match.group(1)).is_file():
        return Path(match.group(1))
    return None


def check_prometheus(config: Path) -> list[Problem]:
    """The Prometheus config and every rule file it loads."""
    return _run("promtool", ["check", "config", str(config)], config)


def check_alertmanager(config: Path) -> list[Problem]:
    return _run("amtool", ["check-config", str(config)], config)


def check_json(path: Path) -> list[Problem]:
    try:
        json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [Problem(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")]
    except OSError as exc:
        return [Problem(path, None, f"cannot read: {exc.strerror}")]
    return []


def check_deploy(deploy_dir: Path) -> list[Problem]:
    """Every monitoring config under ``deploy_dir`` (Prometheus, Alertmanager, Grafana)."""
    problems = check_prometheus(deploy_dir / "prometheus" / "prometheus.yml")
    problems += check_alertmanager(deploy_dir / "alertmanager" / "alertmanager.yml")
    for dashboard in sorted((deploy_dir / "grafana" / "dashboards").glob("*.json")):
        problems += check_json(dashboard)
    return problems
