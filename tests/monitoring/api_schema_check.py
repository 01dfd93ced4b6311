"""Run with the Google Cloud SDK's Python and its modules on the path (tests/deploy/gcloud_env.py).

Loads each JSON file given on the command line into the Cloud Monitoring API message that
gcloud itself sends (``Dashboard`` of monitoring v1, ``AlertPolicy`` of monitoring v3; the
classes gcloud generates from the API's discovery document) and prints, as one JSON object,
every field or enum value the API does not define, per file. Usage:
    api_schema_check.py dashboard FILE... -- alert FILE...
"""
import json
import sys

from apitools.base.protorpclite import messages
from apitools.base.py import encoding
from googlecloudsdk.generated_clients.apis.monitoring.v1 import monitoring_v1_messages as v1
from googlecloudsdk.generated_clients.apis.monitoring.v3 import monitoring_v3_messages as v3


def unknown(message, path="$"):
    found = []
    for name in message.all_unrecognized_fields():
        found.append(f"{path}.{name}")
    for field in message.all_fields():
        value = message.get_assigned_value(field.name)
        if value is None:
            continue
        items = value if field.repeated else [value]
        for i, item in enumerate(items):
            where = f"{path}.{field.name}" + (f"[{i}]" if field.repeated else "")
            if isinstance(item, messages.Message):
                found += unknown(item, where)
    return found


def check(cls, path):
    with open(path) as fh:
        text = fh.read()
    try:
        return unknown(encoding.JsonToMessage(cls, text))
    except Exception as exc:  # invalid enum values and wrong types raise here
        return [f"{type(exc).__name__}: {exc}"]


def main(argv):
    kind, result = None, {}
    for arg in argv:
        if arg in ("dashboard", "alert"):
            kind = arg
        elif arg != "--":
            result[arg] = check(v1.Dashboard if kind == "dashboard" else v3.AlertPolicy, arg)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
