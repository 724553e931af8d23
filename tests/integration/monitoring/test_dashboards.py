"""Grafana dashboards: generated from their source, every query parses and names real series."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from promql import known_metric_names, metric_names

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel target and variable query."""
    found = []
    for path in DASHBOARDS:
        board = load(path)
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((path.name, panel["title"], target["expr"]))
        for variable in board["templating"]["list"]:
            inner = re.fullmatch(r"label_values\((\w+), \w+\)", variable["definition"])
            assert inner, variable["definition"]
            found.append((path.name, f"${variable['name']}", inner.group(1)))
    return found


def test_the_four_dashboards_exist_and_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen", GRAFANA / "generate_dashboards.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rendered = generator.render()
    assert (
        sorted(rendered)
        == [p.name for p in DASHBOARDS]
        == [
            "data-quality.json",
            "feed-health.json",
            "pipeline-overview.json",
            "storage-cache.json",
        ]
    )
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"regenerate {path.name}"


def test_structure_uids_ids_and_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    uids = set()
    for path in DASHBOARDS:
        board = load(path)
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and ids
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"], panel["title"]
    assert len(uids) == len(DASHBOARDS)


def test_every_query_names_known_series() -> None:
    known = known_metric_names()
    for board, title, expr in queries():
        names = metric_names(expr)
        assert names, (board, title, expr)
        assert names <= known, (board, title, names - known)


def test_every_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/bootstrap.sh installs it)")
    # Grafana's variables become concrete values; then each query is a recording rule, which
    # promtool parses with Prometheus's own PromQL parser.
    rules = [
        {
            "record": f"dashboard:query_{n}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$exchange", "binance"),
        }
        for n, (_, _, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
