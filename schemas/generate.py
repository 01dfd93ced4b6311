"""Regenerate the checked-in BigQuery artefacts from the Arrow schema.

Run `python -m schemas.generate` after changing `schemas/events.py`; `--check` exits 1
when the files on disk differ from what the schema generates (the tests run that check).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas.events import bigquery_schema, external_table_ddl
from schemas.views import deduped_view_sql, views_sql

BIGQUERY_DIR = Path(__file__).resolve().parent / "bigquery"
GENERATED = {
    "events.json": lambda: json.dumps(bigquery_schema(), indent=2) + "\n",
    "events_external_table.sql": lambda: external_table_ddl(),
    "events_deduped_view.sql": deduped_view_sql,
    "views.sql": views_sql,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, render in GENERATED.items():
        path = BIGQUERY_DIR / name
        text = render()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale generated files (run python -m schemas.generate): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
