"""A normalized row by column name, for tests that read a row's columns (datetimes, not micros)."""
from __future__ import annotations

from typing import Any

from pipeline.core.decode import DecodedEvent
from pipeline.core.normalize import normalize
from pipeline.core.rows import row_dict


def normalized(decoded: DecodedEvent, **kwargs: Any) -> dict[str, Any]:
    """``row_dict(normalize(decoded, **kwargs))``: the columns of the one row of ``decoded``."""
    return row_dict(normalize(decoded, **kwargs))
