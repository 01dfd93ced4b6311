"""Entry point the Dataflow Flex Template launcher runs (FLEX_TEMPLATE_PYTHON_PY_FILE).

The launcher runs a file, not a module: running ``pipeline/main.py`` as a script would put
``pipeline/`` itself on ``sys.path`` and let its subpackages shadow top-level modules. This
file sits outside the package and only hands the job's parameters on: to
``pipeline.main.run`` (the event pipeline), or, with ``--job=compact``, to
``pipeline.compact.main`` (one template, two jobs; the options are in ``pipeline.options``).
"""
from __future__ import annotations

import logging
import sys

from typing import Sequence


def launch(argv: Sequence[str]) -> int:
    job = next((a.split("=", 1)[1] for a in argv if a.startswith("--job=")), "pipeline")
    rest = [a for a in argv if not a.startswith("--job=")]
    if job == "compact":
        from pipeline.compact import main as compact
        # Parameters meant for the event pipeline (e.g. dead_letter_output) are not compaction's.
        return compact([a for a in rest if not a.startswith("--dead_letter_output=")])
    from pipeline.main import run
    return run(argv)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(launch(sys.argv[1:]))
