"""Unique names for per-test topics, subscriptions, queues and buckets."""
from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
