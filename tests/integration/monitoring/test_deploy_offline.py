"""Offline validation of deploy/: promtool, amtool, rule unit tests, names in rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from promql import known_metric_names, metric_names
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.monitoring.deploy_check import check_deploy

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
PROM = DEPLOY / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*_test.yml"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def test_promtool_check_config() -> None:
    out = run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 3 rule files found" in out.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests(test_file: Path) -> None:
    out = run(tool("promtool"), "test", "rules", str(test_file))
    assert out.returncode == 0, out.stdout + out.stderr


def _rules() -> list[dict[str, str]]:
    rules = []
    for path in sorted((PROM / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_every_rule_group_has_a_test_and_every_alert_is_tested_both_ways() -> None:
    groups = {p.stem for p in (PROM / "rules").glob("*.yml")}
    assert {p.name.removesuffix("_test.yml") for p in RULE_TESTS} == groups
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in _rules()}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"


def test_rules_use_known_metric_names_and_carry_severity_and_runbook() -> None:
    known = known_metric_names()
    for rule in _rules():
        assert metric_names(rule["expr"]) <= known, (rule["alert"], metric_names(rule["expr"]))
        assert rule["labels"]["severity"] in {"warning", "critical"}
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{anchor}"
        assert f"### {rule['alert']}" in (DEPLOY.parent / "docs" / "operations.md").read_text()


def test_amtool_check_config_and_routing() -> None:
    amtool = tool("amtool")
    config = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    out = run(amtool, "check-config", config)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 inhibit rules" in out.stdout
    for labels, receiver in (
        (["alertname=StorageDown", "severity=critical"], "critical"),
        (["alertname=DataStale", "severity=warning"], "warning"),
        (["alertname=Other"], "default"),
    ):
        out = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == receiver, (labels, out.stdout)


def test_malformed_configs_are_reported_with_file_and_line(tmp_path: Path) -> None:
    tool("promtool")
    tool("amtool")
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".env"))
    assert check_deploy(copy) == []
    host = copy / "prometheus" / "rules" / "host.yml"
    lines = host.read_text().splitlines()
    bad_line = next(i for i, t in enumerate(lines, 1) if "for: 2m" in t)
    host.write_text(host.read_text().replace("for: 2m", "for: 2 minutes"))
    am = copy / "alertmanager" / "alertmanager.yml"
    am_lines = am.read_text().splitlines()
    am_bad = next(i for i, t in enumerate(am_lines, 1) if t.startswith("  group_wait:"))
    am.write_text(am.read_text().replace("  group_wait: 30s", "  group_wait: soon", 1))
    (copy / "grafana" / "dashboards" / "broken.json").write_text('{\n  "title": "x",\n}\n')
    problems = {str(p.path): p for p in check_deploy(copy)}
    assert problems[str(host)].line == bad_line
    assert "2 minutes" in problems[str(host)].message
    assert problems[str(am)].line == am_bad
    assert problems[str(copy / "grafana" / "dashboards" / "broken.json")].line == 3

    _register()
    result = CliRunner().invoke(app, ["monitoring", "check", str(copy)])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["monitoring", "check", str(DEPLOY)])
    assert result.exit_code == 0, result.output


def test_metric_names_extraction() -> None:
    expr = (
        'sum by (exchange) (rate(tickvault_messages_received_total{exchange=~"$exchange"}'
        "[$__rate_interval])) / on (exchange) group_left max(up) > 1e3 "
        'or label_replace(pg_up, "backend", "postgres", "", "") offset 5m'
    )
    assert metric_names(expr) == {"tickvault_messages_received_total", "up", "pg_up"}
