"""The Google Cloud metric types the monitoring files may name, as Google documents them.

Sources (Cloud Monitoring, "Google Cloud metrics", list generated 2026-04-10):
- https://cloud.google.com/monitoring/api/metrics_gcp_d_h  (dataflow.googleapis.com)
- https://cloud.google.com/monitoring/api/metrics_gcp_p_z  (pubsub.googleapis.com, run.googleapis.com)
Each entry: metric kind, value type, the monitored resource type it is written against, and
its metric labels. Cloud Run functions (gen2) are Cloud Run services of the same name, so the
receiver's requests are ``run.googleapis.com/request_count`` on ``cloud_run_revision``.

Beam user metrics reach Cloud Monitoring on Dataflow as ``dataflow.googleapis.com/job/user_counter``
(GAUGE, DOUBLE; label ``metric_name`` = the name given in the pipeline, plus ``job_id`` and
``ptransform``). A Beam distribution is exported as several such series, one per statistic, with
the statistic appended to its name (``<name>_MEAN``, ``_MIN``, ``_MAX``; the form described for
Dataflow's custom-metric export: not re-checked here against a live job).
"""
from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    kind: str  # GAUGE, DELTA or CUMULATIVE
    value_type: str
    resource: str
    labels: frozenset[str]


KNOWN_METRICS: dict[str, Metric] = {
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age":
        Metric("GAUGE", "INT64", "pubsub_subscription", frozenset()),
    "pubsub.googleapis.com/subscription/num_undelivered_messages":
        Metric("GAUGE", "INT64", "pubsub_subscription", frozenset()),
    "dataflow.googleapis.com/job/system_lag":
        Metric("GAUGE", "INT64", "dataflow_job", frozenset({"job_id"})),
    "dataflow.googleapis.com/job/data_watermark_age":
        Metric("GAUGE", "INT64", "dataflow_job", frozenset({"job_id"})),
    "dataflow.googleapis.com/job/user_counter":
        Metric("GAUGE", "DOUBLE", "dataflow_job", frozenset({"metric_name", "job_id", "ptransform"})),
    "run.googleapis.com/request_count":
        Metric("DELTA", "INT64", "cloud_run_revision", frozenset({"response_code", "response_code_class", "route"})),
}

# Monitored-resource labels (https://cloud.google.com/monitoring/api/resources).
RESOURCE_LABELS: dict[str, frozenset[str]] = {
    "pubsub_subscription": frozenset({"project_id", "subscription_id"}),
    "dataflow_job": frozenset({"project_id", "job_name", "region"}),
    "cloud_run_revision": frozenset({"project_id", "service_name", "revision_name", "location", "configuration_name"}),
}

DISTRIBUTION_SUFFIXES = ("_MEAN", "_MIN", "_MAX")

# Aligners that need a DELTA or CUMULATIVE metric (the API refuses them on a GAUGE).
RATE_ALIGNERS = frozenset({"ALIGN_RATE", "ALIGN_DELTA"})


def promql_name(metric_type: str) -> str:
    """Cloud Monitoring's PromQL name of a metric type: dots and slashes to underscores,
    the first slash to a colon (dataflow.googleapis.com/job/user_counter ->
    dataflow_googleapis_com:job_user_counter)."""
    domain, _, path = metric_type.partition("/")
    return domain.replace(".", "_") + ":" + path.replace("/", "_").replace(".", "_")
