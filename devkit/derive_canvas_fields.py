"""Write ``schemas/canvas_fields.py``: each Canvas event type's body fields and their BigQuery types.

Development tool, run by hand when the documented corpus changes:
``python -m devkit.derive_canvas_fields [--corpus ../shared/canvas-events] [--check]``.
It reads the field map (``fields.json``: body keys of every example in document order, plus
the keys each event's ``schema`` documents), the example bodies themselves and the Canvas-format
third-party deliveries (``../shared/third-party-events``), and decides one type per field name:

* ids (``id``, ``*_id``) are STRING even where an example gives a number (CATALOG.md quirk 1);
* objects and arrays are JSON; booleans BOOL;
* ``*_at``, ``*_until`` and ``*_date`` names holding times are TIMESTAMP (the views parse the
  several Canvas shapes, quirk 3); a number anywhere is FLOAT64 when any example has a fraction
  or the name says it is a score/points/percentage, else INT64;
* everything else, and fields no example fills, STRING (or the name's evident type).

The output is a plain Python literal: the project's own data (names and types), not a copy of
the examples. ``--check`` exits 1 when the checked-in module differs from what the corpus gives.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "canvas-events"
DEFAULT_THIRD_PARTY = REPO.parent / "shared" / "third-party-events"
TARGET = REPO / "schemas" / "canvas_fields.py"

_FRACTIONAL_NAMES = re.compile(r"score|points|possible|percent|weight")
_TIME_NAMES = re.compile(r"(_at|_until|_date)$")
# Where the examples mislead: the name (and Canvas's model) says otherwise.
_OVERRIDES = {
    "access_code": "STRING",  # a quiz password; one example shows `true`
    "can_manually_enroll": "BOOL",  # only ever null in the examples
    "integration_data": "JSON",  # a hash in Canvas; only ever null in the examples
}


def is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def field_type(name: str, values: Iterable[Any]) -> str:
    """One BigQuery type for a body key, from its name and every non-null example value."""
    if name in _OVERRIDES:
        return _OVERRIDES[name]
    kinds = {type(v).__name__ for v in values if v is not None}
    if kinds & {"dict", "list"}:
        return "JSON"
    if is_id(name):
        return "STRING"
    if kinds == {"bool"}:
        return "BOOL"
    if kinds and kinds <= {"int", "float"}:
        return "FLOAT64" if "float" in kinds or _FRACTIONAL_NAMES.search(name) else "INT64"
    if _TIME_NAMES.search(name) and kinds <= {"str"}:
        return "TIMESTAMP"
    return "STRING"


def _canvas_bodies(corpus: Path, third_party: Path | None) -> Iterable[tuple[str, dict]]:
    with open(corpus / "payloads" / "canvas.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                payload = entry["payload"]
                # The envelope examples (doc "metadata") belong to the event their metadata names.
                name = entry["doc_name"] if entry["doc_name"] != "metadata" else payload["metadata"]["event_name"]
                yield name, payload["body"]
    if third_party is not None and third_party.is_dir():
        for path in sorted(third_party.glob("*.jsonl")):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        delivery = json.loads(line)
                    except ValueError:
                        continue  # a source file kept as is, comments included
                    if isinstance(delivery, dict) and isinstance(delivery.get("metadata"), dict) \
                            and isinstance(delivery.get("body"), dict):
                        yield delivery["metadata"]["event_name"], delivery["body"]


def derive(corpus: Path = DEFAULT_CORPUS, third_party: Path | None = DEFAULT_THIRD_PARTY) -> dict[str, list[tuple[str, str]]]:
    """event_name -> [(body key, BigQuery type)], keys in document order."""
    documented = json.loads((corpus / "fields.json").read_text(encoding="utf-8"))["canvas"]
    names: dict[str, list[str]] = {}
    for event_name, entry in documented.items():
        order = list(entry["body_fields"])
        order += [k for k in entry.get("schema_fields", []) if k not in order]
        names[event_name] = order
    values: dict[str, list[Any]] = defaultdict(list)
    for event_name, body in _canvas_bodies(corpus, third_party):
        order = names.setdefault(event_name, [])
        for key, value in body.items():
            values[key].append(value)
            if key not in order:
                order.append(key)
    return {event: [(key, field_type(key, values[key])) for key in keys]
            for event, keys in sorted(names.items())}


def render(fields: dict[str, list[tuple[str, str]]]) -> str:
    lines = [
        '"""Body fields of every Canvas event type, with the BigQuery type each one is read as.',
        "",
        "Generated by ``python -m devkit.derive_canvas_fields`` from the documented corpus",
        "(``../shared/canvas-events/fields.json``, its example bodies and the Canvas-format third-party",
        "deliveries); a test checks it against them. The typed BigQuery views (``schemas/views.py``)",
        "turn each field into a column of that type, named after the body key. Ids are STRING even",
        "where an example gives a number; TIMESTAMP fields are parsed from Canvas's several formats.",
        '"""',
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        "",
        "class Field(NamedTuple):",
        "    name: str",
        "    type: str  # BigQuery type: STRING, INT64, FLOAT64, BOOL, TIMESTAMP or JSON",
        "",
        "",
        "TYPES = (\"STRING\", \"INT64\", \"FLOAT64\", \"BOOL\", \"TIMESTAMP\", \"JSON\")",
        "",
        "# Canvas event_name -> its body fields, in document order.",
        "BODY_FIELDS: dict[str, tuple[Field, ...]] = {",
    ]
    for event, items in fields.items():
        if not items:
            lines.append(f"    {event!r}: (),")
            continue
        lines.append(f"    {event!r}: (")
        for key, type_ in items:
            lines.append(f"        Field({key!r}, {type_!r}),")
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--third_party", type=Path, default=DEFAULT_THIRD_PARTY)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render(derive(args.corpus, args.third_party))
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m devkit.derive_canvas_fields", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
