"""Monitoring as code: the files in monitoring/ are what the Cloud Monitoring API accepts, name
metrics that exist, and `make monitoring` applies every one of them.

- Schema: each file is loaded into the API message gcloud itself sends (the classes the Google
  Cloud SDK generates from the API's discovery document) and must leave no field or enum value
  unrecognized; a deliberately wrong file proves the check bites.
- Required fields, as the API reference documents them: a Dashboard has a displayName and one
  layout; an AlertPolicy has a displayName, a combiner, conditions each with a displayName and
  exactly one condition type, and that type's own required fields.
- Metric types: every Google metric named is in the documented list (tests/monitoring/
  known_metrics.py), on its own monitored resource, with labels it has and aligners its kind
  allows; every Beam metric named is one a real run of the pipeline reports.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.main import build_pipeline
from pipeline.transforms.common import METRICS_NAMESPACE
from pipeline.transforms.write import LATENCY_METRIC
from tests.deploy.gcloud_env import gcloud_env, gcloud_sdk_python, gcloud_sdk_root, isolated
from tests.deploy.dry_run import dry_run, make
from tests.deploy.gcloud_env import NO_ACCOUNT
from tests.monitoring.known_metrics import (
    DISTRIBUTION_SUFFIXES,
    KNOWN_METRICS,
    RATE_ALIGNERS,
    RESOURCE_LABELS,
    promql_name,
)
from tests.pipeline.helpers import corpus_payloads

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
ALERTS = sorted((MONITORING / "alerts").glob("*.json"))
ALL_FILES = [DASHBOARD, *ALERTS]
LAYOUTS = ("gridLayout", "mosaicLayout", "rowLayout", "columnLayout")
CONDITION_TYPES = ("conditionThreshold", "conditionAbsent", "conditionMatchedLog", "conditionMonitoringQueryLanguage",
                   "conditionPrometheusQueryLanguage", "conditionSql")
WIDGET_TYPES = ("xyChart", "scorecard", "text", "blank", "alertChart", "timeSeriesTable", "collapsibleGroup",
                "logsPanel", "incidentList", "pieChart", "errorReportingPanel", "sectionHeader", "singleViewGroup")
COMPARISONS = ("COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE", "COMPARISON_EQ", "COMPARISON_NE")
DURATION = re.compile(r"^\d+(\.\d+)?s$")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def walk(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON tree."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found += walk(v, key)
    elif isinstance(node, list):
        for item in node:
            found += walk(item, key)
    return found


def test_there_is_a_file_for_each_signal() -> None:
    names = {p.stem for p in ALERTS}
    assert names == {"subscription-backlog", "dead-letter-rate", "receiver-5xx", "dataflow-system-lag",
                     "no-new-parquet"}


# ---- the API's own schema ------------------------------------------------------------------------

def test_every_file_fits_the_api_messages_gcloud_sends(tmp_path: Path) -> None:
    bad = tmp_path / "bad-alert.json"
    bad.write_text(json.dumps({"displayName": "x", "combiner": "SOMETIMES",
                               "conditions": [{"displayName": "c", "conditionThreshhold": {}}]}))
    proc = subprocess.run(
        [str(gcloud_sdk_python()), str(Path(__file__).with_name("api_schema_check.py")),
         "dashboard", str(DASHBOARD), "alert", *map(str, ALERTS), str(bad)],
        env=gcloud_env(tmp_path, sdk_imports=True), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result.pop(str(bad)) == ["$.combiner", "$.conditions[0].conditionThreshhold"]  # the check bites
    assert result == {str(p): [] for p in ALL_FILES}


# ---- required fields (Cloud Monitoring API reference) ---------------------------------------------

def test_dashboard_has_the_required_fields() -> None:
    dashboard = load(DASHBOARD)
    assert dashboard["displayName"].strip()
    layouts = [k for k in LAYOUTS if k in dashboard]
    assert layouts == ["mosaicLayout"]
    layout = dashboard["mosaicLayout"]
    assert layout["columns"] > 0 and layout["tiles"]
    cells: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        assert tile["width"] > 0 and tile["height"] > 0
        assert tile.get("xPos", 0) + tile["width"] <= layout["columns"]
        area = {(x, y) for x in range(tile.get("xPos", 0), tile.get("xPos", 0) + tile["width"])
                for y in range(tile.get("yPos", 0), tile.get("yPos", 0) + tile["height"])}
        assert not area & cells, f"tiles overlap: {tile['widget']['title']}"
        cells |= area
        widget = tile["widget"]
        assert widget["title"].strip()
        assert [k for k in WIDGET_TYPES if k in widget] == ["xyChart"]
        for data_set in widget["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]
            assert [k for k in ("timeSeriesFilter", "timeSeriesFilterRatio", "timeSeriesQueryLanguage",
                                "prometheusQuery") if k in query] == ["timeSeriesFilter"]
            assert query["timeSeriesFilter"]["filter"]


@pytest.mark.parametrize("path", ALERTS, ids=lambda p: p.stem)
def test_alert_policy_has_the_required_fields(path: Path) -> None:
    policy = load(path)
    assert policy["displayName"].strip()
    assert policy["combiner"] in ("AND", "OR", "AND_WITH_MATCHING_RESOURCE")
    assert policy["documentation"]["content"].strip() and policy["documentation"]["mimeType"] == "text/markdown"
    assert policy["conditions"]
    for condition in policy["conditions"]:
        assert condition["displayName"].strip()
        kinds = [k for k in CONDITION_TYPES if k in condition]
        assert len(kinds) == 1, kinds
        body = condition[kinds[0]]
        if kinds[0] == "conditionThreshold":
            assert body["filter"] and body["comparison"] in COMPARISONS
            assert isinstance(body["thresholdValue"], (int, float))
            assert DURATION.match(body["duration"])
            assert ("denominatorFilter" in body) == ("denominatorAggregations" in body)
        else:
            assert kinds[0] == "conditionPrometheusQueryLanguage"
            assert body["query"].strip() and DURATION.match(body.get("duration", "0s"))
            assert DURATION.match(body.get("evaluationInterval", "30s"))


def test_thresholds_are_the_ones_operators_were_promised() -> None:
    def threshold(name: str) -> dict[str, Any]:
        (condition,) = load(MONITORING / "alerts" / f"{name}.json")["conditions"]
        return condition

    backlog = threshold("subscription-backlog")["conditionThreshold"]
    assert "oldest_unacked_message_age" in backlog["filter"]
    assert (backlog["comparison"], backlog["thresholdValue"]) == ("COMPARISON_GT", 600)  # 10 minutes
    lag = threshold("dataflow-system-lag")["conditionThreshold"]
    assert "job/system_lag" in lag["filter"] and lag["thresholdValue"] == 600
    errors = threshold("receiver-5xx")["conditionThreshold"]
    assert 'response_code_class = "5xx"' in errors["filter"] and "5xx" not in errors["denominatorFilter"]
    dead = threshold("dead-letter-rate")["conditionPrometheusQueryLanguage"]["query"]
    assert re.search(r'metric_name="dead_letters_written"}\[1h\]\)\) / sum\(delta\(.*metric_name="deliveries_read"}\[1h\]'
                     r"\)\) > 0\.01$", dead)
    files = threshold("no-new-parquet")["conditionPrometheusQueryLanguage"]["query"]
    assert re.search(r'metric_name="files_written"}\[30m\]\)\) or vector\(0\)\) < 1$', files)


# ---- metric types -------------------------------------------------------------------------------

_FILTER_TERM = re.compile(r'(metric\.type|resource\.type|resource\.labels\.(\w+)|metric\.labels\.(\w+))\s*=\s*'
                          r'(?:"([^"]*)"|one_of\(([^)]*)\))')
_PROMQL_SELECTOR = re.compile(r"([a-z0-9_]+:[a-z0-9_]+)\{([^}]*)\}")


def filters(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(filter, aggregations) pairs of a file: dashboard data sets, thresholds, denominators."""
    doc = load(path)
    pairs = []
    for data_set in walk(doc, "timeSeriesFilter"):
        pairs.append((data_set["filter"], [data_set.get("aggregation", {})]))
    for threshold in walk(doc, "conditionThreshold"):
        pairs.append((threshold["filter"], threshold.get("aggregations", [])))
        if "denominatorFilter" in threshold:
            pairs.append((threshold["denominatorFilter"], threshold["denominatorAggregations"]))
    return pairs


def parse_filter(text: str) -> dict[str, list[str]]:
    terms: dict[str, list[str]] = {}
    for match in _FILTER_TERM.finditer(text):
        values = [match.group(4)] if match.group(4) is not None else re.findall(r'"([^"]*)"', match.group(5))
        terms.setdefault(match.group(1), []).extend(values)
    return terms


def beam_metric_names() -> set[str]:
    """Every Beam metric name the monitoring files refer to (distribution suffixes removed)."""
    names: set[str] = set()
    for path in ALL_FILES:
        for text, _ in filters(path):
            names.update(parse_filter(text).get("metric.labels.metric_name", []))
        for query in walk(load(path), "query"):
            names.update(re.findall(r'metric_name="([^"]+)"', query))
    return names


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_filters_name_documented_metrics_on_their_resources(path: Path) -> None:
    pairs = filters(path)
    for text, aggregations in pairs:
        terms = parse_filter(text)
        (metric_type,) = terms["metric.type"]
        assert metric_type in KNOWN_METRICS, metric_type
        known = KNOWN_METRICS[metric_type]
        assert terms["resource.type"] == [known.resource], text
        for key in terms:
            if key.startswith("resource.labels."):
                assert key.split(".")[-1] in RESOURCE_LABELS[known.resource], key
            if key.startswith("metric.labels."):
                assert key.split(".")[-1] in known.labels, key
        for aggregation in aggregations:
            if known.kind == "GAUGE":
                assert aggregation.get("perSeriesAligner") not in RATE_ALIGNERS, (metric_type, aggregation)
            for field in aggregation.get("groupByFields", []):
                assert field.removeprefix("metric.label.") in known.labels, field
    for query in walk(load(path), "query"):
        selectors = _PROMQL_SELECTOR.findall(query)
        assert selectors
        for name, labels in selectors:
            metric_type = next((t for t in KNOWN_METRICS if promql_name(t) == name), None)
            assert metric_type, f"{name} is no documented metric"
            known = KNOWN_METRICS[metric_type]
            given = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            assert given.pop("monitored_resource") == known.resource
            assert set(given) <= known.labels | RESOURCE_LABELS[known.resource], given


def test_promql_names_follow_the_documented_mapping() -> None:
    assert promql_name("dataflow.googleapis.com/job/user_counter") == "dataflow_googleapis_com:job_user_counter"
    assert promql_name("run.googleapis.com/request_count") == "run_googleapis_com:request_count"


@pytest.fixture(scope="module")
def pipeline_metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Counters and distributions a real batch run reports (namespace canvas_events)."""
    root = tmp_path_factory.mktemp("metrics")
    source = root / "in.jsonl"
    lines = [json.dumps(p).encode() for p in corpus_payloads()[:40]] + [b"garbage"]
    source.write_bytes(b"\n".join(lines + lines[:5]) + b"\n")
    options = PipelineOptions([f"--input_files={source}", f"--output={root / 'out'}",
                               f"--dead_letter_output={root / 'dead'}", "--allow_unsigned", "--runner=DirectRunner"])
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    result = pipeline.run()
    result.wait_until_finish()
    elapsed_ms = (time.time() - started) * 1000
    found: dict[str, Any] = {"elapsed_ms": elapsed_ms, "counters": {}, "distributions": {}}
    query = result.metrics().query()
    for kind in ("counters", "distributions"):
        for metric in query[kind]:
            if metric.key.metric.namespace == METRICS_NAMESPACE:
                value = metric.committed if metric.committed is not None else metric.attempted
                found[kind][metric.key.metric.name] = value
    return found


def test_beam_metrics_named_are_reported_by_the_pipeline(pipeline_metrics: dict[str, Any]) -> None:
    reported_counters = set(pipeline_metrics["counters"])
    reported_distributions = set(pipeline_metrics["distributions"])
    named = beam_metric_names()
    assert {"files_written", "dead_letters_written", "deliveries_read", f"{LATENCY_METRIC}_MEAN"} <= named
    for name in named:
        base = next((name[: -len(s)] for s in DISTRIBUTION_SUFFIXES if name.endswith(s)), None)
        if base is not None and base in reported_distributions:
            continue
        assert name in reported_counters, f"{name}: the pipeline reports no such metric"


def test_end_to_end_latency_is_a_distribution_over_every_row(pipeline_metrics: dict[str, Any]) -> None:
    latency = pipeline_metrics["distributions"][LATENCY_METRIC]
    assert latency.count == pipeline_metrics["counters"]["rows_written"] > 0
    assert 0 <= latency.min <= latency.max <= pipeline_metrics["elapsed_ms"]


# ---- make monitoring ----------------------------------------------------------------------------

PROJECT = "my-proj-123"


def test_make_monitoring_applies_every_file_filled_in(tmp_path: Path) -> None:
    run = dry_run("monitoring", tmp_path, JOB_NAME="canvas-job", SUBSCRIPTION="canvas-sub", FUNCTION="canvas-fn",
                  NOTIFICATION_CHANNELS="projects/my-proj-123/notificationChannels/42")
    dashboards = [c for c in run.commands if c[:4] == ["gcloud", "monitoring", "dashboards", "create"]]
    policies = [c for c in run.commands if c[:5] == ["gcloud", "alpha", "monitoring", "policies", "create"]]
    assert len(dashboards) == 1 and len(policies) == len(ALERTS) and len(run.commands) == 1 + len(ALERTS)
    for cmd in dashboards + policies:
        assert f"--project={PROJECT}" in cmd
    for cmd in policies:
        assert "--notification-channels=projects/my-proj-123/notificationChannels/42" in cmd
    files = [Path(t.split("=", 1)[1]) for c in run.commands for t in c
             if t.startswith(("--config-from-file=", "--policy-from-file="))]
    assert sorted(p.name for p in files[1:]) == sorted(p.name for p in ALERTS)
    for path in files:
        text = path.read_text()
        assert "${" not in text, path
        source = MONITORING / path.relative_to(tmp_path / "build" / "monitoring")
        expected = (source.read_text().replace("${JOB_NAME}", "canvas-job").replace("${SUBSCRIPTION}", "canvas-sub")
                    .replace("${FUNCTION}", "canvas-fn"))
        assert text == expected
        json.loads(text)


def test_make_monitoring_without_channels_and_without_project(tmp_path: Path) -> None:
    run = dry_run("monitoring", tmp_path)
    assert not any("--notification-channels" in t for c in run.commands for t in c)
    # The deploy defaults fill the placeholders (mk/deploy.mk: SUBSCRIPTION, JOB_NAME).
    text = "".join(json.dumps(json.loads(Path(t.split("=", 1)[1]).read_text()))
                   for c in run.commands for t in c if t.startswith(("--policy-from-file=", "--config-from-file=")))
    assert 'subscription_id = \\"canvas-live-events-pipeline\\"' in text
    assert 'job_name=\\"canvas-live-events\\"' in text
    proc = make("monitoring", tmp_path, PROJECT="")
    assert proc.returncode != 0 and "PROJECT is not set" in proc.stderr


def test_gcloud_accepts_the_printed_commands(tmp_path: Path) -> None:
    run = dry_run("monitoring", tmp_path / "run")
    lines = list(run.lines)
    lines.append(lines[0] + " --no-such-flag")  # the control
    proc = subprocess.run(
        isolated([str(gcloud_sdk_python()), str(REPO / "tests" / "deploy" / "gcloud_parse.py")]),
        input="\n".join(lines), env=gcloud_env(tmp_path / "config", sdk_imports=True), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *checked, control = json.loads(proc.stdout.strip().splitlines()[-1])
    assert control["exit"] == 2 and "unrecognized arguments" in control["stderr"]
    for line, result in zip(lines, checked):
        assert result["exit"] == 1 and NO_ACCOUNT in result["stderr"], (line, result)
    assert gcloud_sdk_root().is_dir()
