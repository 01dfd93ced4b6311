"""Reading a Pub/Sub emulator subscription in tests: every body that arrives, copies counted."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from devkit.emulators import PubSubEmulator


def pull_until(pubsub: PubSubEmulator, subscription: str, done: Any, *, settle: float = 1.0,
               timeout: float = 30) -> Counter[bytes]:
    """Pull until ``done(bodies)`` holds, then ``settle`` s more for stray copies; or until ``timeout``."""
    bodies: Counter[bytes] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(bodies):
        bodies.update(m.data for m in pubsub.pull(subscription, max_messages=500, timeout=0.5))
    bodies.update(m.data for m in pubsub.pull(subscription, max_messages=500, timeout=settle))
    return bodies
