"""Benchmark the SQS relay: messages/s from SQS to Pub/Sub, beside a floor measured in the same run.

The floor is the same relay (same receive loops, same batches of 10, same DeleteMessageBatch)
with publishing replaced by a publisher that answers at once: receive + delete alone, the most
the relay could do against this SQS server. The figure that matters is the ratio (goal: the
relay reaches >= 50 % of the floor). SQS is moto in server mode and Pub/Sub the real emulator,
both on this machine, so absolute figures say little about AWS (whose receive is slower than
moto's with a small queue, and faster with a large one: moto's cost per request grows with the
queue's length, hence the modest --messages). Rounds alternate floor and relay, each on a
freshly filled queue; compare within one run.

    python bench/sqs_relay.py [--messages 300] [--repeat 3] [--receivers 4] [--body-bytes 2048]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.emulators import PubSubEmulator, wait_until  # noqa: E402
from devkit.deliveries import payloads as sample_payloads  # noqa: E402
from pipeline.sqsrelay.relay import PubSubPublisher, Relay  # noqa: E402
from tests.support.moto_sqs import MotoSqsServer  # noqa: E402


class InstantPublisher:
    """The floor's publisher: confirms every message at once, sends nothing."""

    def publish(self, messages):
        return [str(i) for i in range(len(messages))]


def pick_body(target_bytes: int) -> bytes:
    bodies = [orjson.dumps(p) for p in sample_payloads()]
    return min(bodies, key=lambda b: abs(len(b) - target_bytes))


def timed_run(moto: MotoSqsServer, publisher, body: bytes, messages: int, receivers: int) -> tuple[float, int]:
    """Fill a fresh queue and relay it dry; return (messages/s until the queue is empty, copies).

    Copies: messages relayed more than once. moto sometimes hands one message to two concurrent
    receives (SQS itself may, rarely: at least once), so "relayed" alone can pass N too early.
    """
    queue = moto.create_queue("bench")
    moto.send_all(queue, [body] * messages)
    relay = Relay(moto.client, queue, publisher, receivers=receivers, progress_seconds=3600)
    thread = threading.Thread(target=relay.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    abort = lambda: "the relay keeps failing (see its log)" if relay.stats.errors > 20 else None  # noqa: E731
    wait_until(lambda: relay.stats.relayed >= messages, timeout=300, what="queue relayed", interval=0.005,
               abort=abort)
    wait_until(lambda: moto.depth(queue) == (0, 0), timeout=300, what="queue empty", interval=0.05, abort=abort)
    elapsed = time.perf_counter() - started
    relay.stop()
    thread.join(30)
    moto.client.delete_queue(QueueUrl=queue)
    return messages / elapsed, relay.stats.relayed - messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=2048)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    body = pick_body(args.body_bytes)
    with MotoSqsServer() as moto, PubSubEmulator() as pubsub:
        topic = pubsub.create_topic("bench-sqs-relay")
        pubsub.create_subscription(topic, "bench-sqs-relay-sub")  # the pipeline's subscription stores them
        os.environ.update(pubsub.env())  # the relay's own client finds the emulator, as in the tests
        publisher = PubSubPublisher(topic)
        timed_run(moto, publisher, body, 50, args.receivers)  # warm-up: the emulator's JVM, connections
        floors, relays, copies = [], [], 0
        for _ in range(args.repeat):
            rate, extra = timed_run(moto, InstantPublisher(), body, args.messages, args.receivers)
            floors.append(rate)
            copies += extra
            rate, extra = timed_run(moto, publisher, body, args.messages, args.receivers)
            relays.append(rate)
            copies += extra
    ratios = [r / f for r, f in zip(relays, floors)]
    print(f"sqs-relay bench: {args.messages} messages of {len(body)} bytes per round, {args.receivers} receivers, "
          f"{args.repeat} rounds (moto server + Pub/Sub emulator, this machine)")
    print(f"  floor (receive + delete):   {' '.join(f'{x:7.0f}' for x in floors)}  msgs/s, "
          f"median {statistics.median(floors):.0f}")
    print(f"  relay (+ publish, confirm): {' '.join(f'{x:7.0f}' for x in relays)}  msgs/s, "
          f"median {statistics.median(relays):.0f}")
    print(f"  relay / floor, per round:   {' '.join(f'{x:7.0%}' for x in ratios)}  "
          f"median {statistics.median(ratios):.0%} (goal >= 50 %)")
    print(f"  messages relayed twice (moto handing one message to two receives): {copies}")


if __name__ == "__main__":
    main()
