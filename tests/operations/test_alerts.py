"""Alert rules and the Grafana dashboard: they load in their checkers, and every series they read is
one that /metrics exports (`# TYPE` lines of a real scrape, so a renamed metric fails here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .promql import PromQLError, metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "cer-operations.json"
DURATION = re.compile(r"^(\d+[smhdwy])+$")
PROMETHEUS_OWN = {"up"}  # written by Prometheus itself for every scrape target
REQUIRED_ALERTS = {
    "CeROutboxLag",
    "CeRWebhookFailureRatio",
    "CeRWaitingListAllocationLag",
    "CeRBookingErrorRatio",
    "CeRReminderBacklog",
    "CeRReconciliationOverdue",
    "CeRNotReady",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture
def exported(scrape) -> set[str]:
    """Every series name /metrics can answer with, from the TYPE lines of a real scrape."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", scrape().text, re.MULTILINE):
        names.add(name)
        names.update(name + suffix for suffix in SUFFIXES.get(kind, ()))
    return names


def test_the_rule_file_is_well_formed_as_promtool_reads_it():
    document = yaml.safe_load(RULES.read_text())
    groups = document["groups"]
    assert len({g["name"] for g in groups}) == len(groups)
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert DURATION.match(rule.get("for", "0s")), rule["alert"]
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert all(isinstance(v, str) for v in {**rule["labels"], **rule["annotations"]}.values())
            assert rule["annotations"]["runbook"].startswith("docs/operations.md#")
            metric_names(rule["expr"])  # parses, or raises PromQLError
            # a {{ $labels.x }} in a message must be a label the expression keeps
            for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
                assert re.search(rf"by \([^)]*\b{label}\b", rule["expr"]), (rule["alert"], label)
    assert {rule["alert"] for rule in _rules()} >= REQUIRED_ALERTS


def test_the_runbooks_the_rules_name_exist():
    anchors = {rule["annotations"]["runbook"] for rule in _rules()}
    text = (ROOT / "docs" / "operations.md").read_text()
    for anchor in anchors:
        for name in re.findall(r"#([a-z0-9-]+)", anchor):
            assert f'<a id="{name}"></a>' in text or f"# {name}" in text, name


@pytest.mark.skipif(
    not (shutil.which("promtool") or (ROOT / "var" / "bin" / "promtool").exists()),
    reason="promtool is not installed (.ci/run unpacks it from Debian's prometheus package)",
)
def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool") or str(ROOT / "var" / "bin" / "promtool")
    result = subprocess.run(  # noqa: S603
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_the_dashboard_is_a_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert {"uid", "title", "schemaVersion", "panels"} <= set(dashboard)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])


@pytest.mark.parametrize(
    "bad", ["sum(rate(cer_x[5m])", 'cer_x{a="b"', "cer_x >", "nosuchfunction(cer_x)", "cer_x cer_y"]
)
def test_the_checker_refuses_broken_expressions(bad):
    with pytest.raises(PromQLError):
        metric_names(bad)


def test_every_series_of_the_rules_and_the_dashboard_is_exported(exported):
    used = set()
    for expression in [rule["expr"] for rule in _rules()] + _dashboard_expressions():
        used |= metric_names(expression)

    assert used - PROMETHEUS_OWN, "nothing checked"
    assert sorted(used - PROMETHEUS_OWN - exported) == []


def test_a_missing_series_would_be_caught(exported):
    assert "cer_bookings_total" in exported
    assert "cer_no_such_series" not in exported
