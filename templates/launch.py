"""Entry point the Dataflow Flex Template launcher runs (FLEX_TEMPLATE_PYTHON_PY_FILE).

The launcher runs a file, not a module: running ``pipeline/main.py`` as a script would put
``pipeline/`` itself on ``sys.path`` and let its subpackages shadow top-level modules. This
file sits outside the package and only hands the job's parameters to ``pipeline.main.run``.
"""
from __future__ import annotations

import logging
import sys

from pipeline.main import run

if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(run(sys.argv[1:]))
