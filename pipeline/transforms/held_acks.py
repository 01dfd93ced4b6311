"""Local streaming runs acknowledge Pub/Sub messages only after the window holding them is written.

The Python DirectRunner's Pub/Sub source acknowledges every message as soon as it pulls it
(STACK.md trap 11), so a local run that stops or dies loses whatever waits in an open window
(10-270 of 2,000 events per stop, measured). Dataflow acknowledges after its own checkpoint and
needs none of this; this module is used only when ``canvas-events run`` streams on a local runner.

How it works:

* :class:`AckLedger` holds the ack ids of the messages pulled and not yet written, each with the
  arrival stamp its element carries, and keeps their ack deadlines extended (every
  ``RENEW_EVERY_SECONDS`` to ``ACK_DEADLINE_SECONDS``) from a background thread.
* ``_HoldingPubSubReadEvaluator`` replaces the DirectRunner's read evaluator (through the
  runner's evaluator override table) for subscriptions that have a ledger: it pulls without
  acknowledging, stamps each element with the time of the pull (its arrival, as ``ToDelivery``
  would), records it in the ledger, and holds the source watermark at that stamp so nothing
  pulled is ever late. Once :meth:`AckLedger.stop_reading` is called it pulls nothing more and
  lets the watermark follow the clock, so every open window closes and is written.
* :class:`AcknowledgeWritten` counts, per window, the written Parquet files, the written
  dead-letter files and the deliveries read. Its per-window combine fires only when the
  watermark after *both* writers has passed the window end, i.e. when every element stamped
  before that end has been written or dropped as a duplicate; then the ledger acknowledges the
  messages stamped before that end.

After a crash (kill -9) the unacknowledged messages come back once their deadline
(``ACK_DEADLINE_SECONDS`` at most) has passed, and the next run on the same subscription writes
them. A message whose window was written just before the crash, but not yet acknowledged, is
written twice: duplicates at rest, which ``canvas-events compact`` and the deduplicating
BigQuery view remove. Nothing pulled is lost.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

log = logging.getLogger(__name__)

ACK_DEADLINE_SECONDS = 20  # how long a pulled, unwritten message stays invisible to others
RENEW_EVERY_SECONDS = 5
PULL_MAX_MESSAGES = 500
PULL_TIMEOUT_SECONDS = 2.0  # an idle pull returns after this, so a stop is noticed quickly
_ACK_CHUNK = 1000  # ack ids per acknowledge / modify_ack_deadline request (request size limit)

_LEDGERS: dict[str, "AckLedger"] = {}
_LEDGERS_LOCK = threading.Lock()


def ledger_for(subscription: str) -> "AckLedger | None":
    with _LEDGERS_LOCK:
        return _LEDGERS.get(subscription)


class AckLedger:
    """Ack ids pulled from one subscription and not yet written, with their arrival stamps.

    Thread-safe. ``close()`` stops the renewal thread and unregisters the ledger; what is still
    held is then left to expire and be redelivered (never acknowledged unwritten).
    """

    def __init__(self, subscription: str, *, deadline_seconds: int = ACK_DEADLINE_SECONDS,
                 renew_every: float = RENEW_EVERY_SECONDS, client: Any = None):
        self.subscription = subscription
        self._deadline = int(deadline_seconds)
        self._renew_every = float(renew_every)
        self._client = client
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # ack id -> arrival stamp (micros)
        self._stop_reading = threading.Event()
        self._pulling = threading.Lock()  # a pull and the hold of what it returned are one step
        self._closed = threading.Event()
        self.acknowledged = 0
        with _LEDGERS_LOCK:
            if subscription in _LEDGERS:
                raise ValueError(f"a ledger for {subscription} is already open in this process")
            _LEDGERS[subscription] = self
        self._renewer = threading.Thread(target=self._renew_loop, name="ack-deadline-renewer", daemon=True)
        self._renewer.start()

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.SubscriberClient()
        return self._client

    @property
    def reading_stopped(self) -> bool:
        return self._stop_reading.is_set()

    def stop_reading(self) -> None:
        """No pull starts after this returns; one in progress has registered what it got."""
        self._stop_reading.set()
        with self._pulling:
            pass

    def pull_and_hold(self) -> tuple[list[Any], Timestamp]:
        """One pull (none once stopped), held under the stamp returned (the time it returned)."""
        with self._pulling:
            received = [] if self.reading_stopped else self.pull()
            stamp = Timestamp.now()
            self.hold((m.ack_id for m in received), stamp)
        return received, stamp

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def pull(self) -> list[Any]:
        """One pull without acknowledging: the ReceivedMessages (empty after an idle wait)."""
        from google.api_core import exceptions

        try:
            response = self.client.pull(
                request={"subscription": self.subscription, "max_messages": PULL_MAX_MESSAGES},
                timeout=PULL_TIMEOUT_SECONDS, retry=None,
            )
        except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable, exceptions.InternalServerError,
                exceptions.Aborted) as exc:
            log.debug("pull from %s: %s (retried on the next read)", self.subscription, type(exc).__name__)
            return []
        return list(response.received_messages)

    def hold(self, ack_ids: Iterable[str], stamp: Timestamp) -> None:
        with self._lock:
            for ack_id in ack_ids:
                self._held[ack_id] = stamp.micros

    def release_before(self, end: Timestamp) -> int:
        """Acknowledge every held message stamped before ``end`` (its window is written)."""
        with self._lock:
            done = [ack_id for ack_id, stamp in self._held.items() if stamp < end.micros]
        if done:
            self._call("acknowledge", done)
            with self._lock:
                for ack_id in done:
                    self._held.pop(ack_id, None)
                self.acknowledged += len(done)
        return len(done)

    def _call(self, method: str, ack_ids: list[str], **extra: Any) -> None:
        for start in range(0, len(ack_ids), _ACK_CHUNK):
            request = {"subscription": self.subscription, "ack_ids": ack_ids[start:start + _ACK_CHUNK], **extra}
            for attempt in range(5):
                try:
                    getattr(self.client, method)(request=request, timeout=30)
                    break
                except Exception as exc:  # noqa: BLE001 - retried; a lost ack only means a redelivery
                    if attempt == 4 or self._closed.is_set():
                        log.warning("%s of %d message(s) failed (%s): they will be redelivered",
                                    method, len(request["ack_ids"]), type(exc).__name__)
                        break
                    time.sleep(0.5 * 2 ** attempt)

    def _renew_loop(self) -> None:
        while not self._closed.wait(self._renew_every):
            with self._lock:
                held = list(self._held)
            if held:
                self._call("modify_ack_deadline", held, ack_deadline_seconds=self._deadline)

    def close(self) -> None:
        self._closed.set()
        with _LEDGERS_LOCK:
            if _LEDGERS.get(self.subscription) is self:
                del _LEDGERS[self.subscription]
        self._renewer.join(timeout=5)


def _holding_evaluator_class() -> type:
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.runners.direct.transform_evaluator import TransformResult, _PubSubReadEvaluator
    from apache_beam.transforms.window import GlobalWindows
    from apache_beam import pvalue

    class _HoldingPubSubReadEvaluator(_PubSubReadEvaluator):
        """The DirectRunner's Pub/Sub read, minus the acknowledgement on pull (see module doc)."""

        def finish_bundle(self) -> Any:
            ledger = ledger_for(self._sub_name)
            if ledger is None:
                return super().finish_bundle()
            received, stamp = ledger.pull_and_hold()
            if ledger.reading_stopped and not received:
                time.sleep(0.1)  # stopped: let the watermark follow the clock, without spinning
            bundles = []
            if received:
                bundle = self._evaluation_context.create_bundle(list(self._outputs)[0])
                for m in received:
                    message = PubsubMessage._from_message(m.message)
                    element = message if self.source.with_attributes else message.data
                    bundle.output(GlobalWindows.windowed_value(element, timestamp=stamp))
                bundles = [bundle]
            unprocessed = self._evaluation_context.create_bundle(
                pvalue.PBegin(self._applied_ptransform.transform.pipeline))
            # The watermark stays at the stamp of what was just pulled: none of it can be late.
            return TransformResult(self, bundles, [unprocessed], None, {None: stamp})

    return _HoldingPubSubReadEvaluator


def install_holding_reader() -> None:
    """Make the local runners read Pub/Sub through the ledger of the subscription, when it has one."""
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry

    overrides = TransformEvaluatorRegistry._test_evaluators_overrides
    if _DirectReadFromPubSub not in overrides:
        overrides[_DirectReadFromPubSub] = _holding_evaluator_class()


def _one(_: Any) -> int:
    return 1


class _ReleaseFn(beam.DoFn):
    def __init__(self, subscription: str):
        self._subscription = subscription

    def process(self, count: int, w: Any = beam.DoFn.WindowParam) -> Iterator[int]:
        ledger = ledger_for(self._subscription)
        if ledger is not None:
            yield ledger.release_before(w.end)


class AcknowledgeWritten(beam.PTransform):
    """(Parquet files, dead-letter files, deliveries) -> acknowledgements of what is written.

    Outputs, per window, how many messages were acknowledged when it closed. Local runs only.
    """

    def __init__(self, subscription: str, window_seconds: int):
        super().__init__()
        self.subscription = subscription
        self.window_seconds = window_seconds

    def expand(self, pcolls: tuple[beam.PCollection, ...]) -> beam.PCollection:
        ticks = [
            pcoll
            | f"Tick{i}" >> beam.Map(_one)
            | f"Window{i}" >> beam.WindowInto(window.FixedWindows(self.window_seconds))
            for i, pcoll in enumerate(pcolls)
        ]
        return (
            ticks
            | "FlattenTicks" >> beam.Flatten()
            | "CountPerWindow" >> beam.CombineGlobally(sum).without_defaults()
            | "Acknowledge" >> beam.ParDo(_ReleaseFn(self.subscription))
        )


EXIT_INTERRUPTED = 130


def run_until_stopped(result: Any, ledger: AckLedger, *, signals: Iterable[int] | None = None) -> int:
    """Block while a local streaming run goes on; on SIGINT/SIGTERM stop it without losing anything.

    First signal: stop pulling, let every open window close and be written, wait until every
    pulled message is acknowledged, cancel the pipeline, return 0. A second signal gives up at
    once (return 130): what is still held is not acknowledged and comes back to the next run.
    Returns 1 when the pipeline fails (held messages are redelivered the same way).
    """
    import signal

    stop = threading.Event()
    finished: dict[str, Any] = {}

    def wait() -> None:
        try:
            finished["state"] = result.wait_until_finish()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            finished["error"] = exc
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM) if signals is None else tuple(signals)
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in signals}
    threading.Thread(target=wait, name="pipeline-waiter", daemon=True).start()
    try:
        stop.wait()
        if "error" in finished or "state" in finished:
            log.error("the pipeline ended: %s; %d unwritten message(s) will be redelivered",
                      finished.get("error") or finished.get("state"), ledger.held())
            return 1
        ledger.stop_reading()
        print(f"canvas-events run: stopping, writing open windows ({ledger.held()} message(s) held)",
              file=sys.stderr, flush=True)
        while ledger.held() and len(received) < 2 and "error" not in finished:
            time.sleep(0.2)
        if len(received) >= 2 or "error" in finished:
            log.warning("stopped before writing everything: %d message(s) not acknowledged, "
                        "they will be redelivered", ledger.held())
            return 1 if "error" in finished else EXIT_INTERRUPTED
        result.cancel()
        print(f"canvas-events run: stopped; {ledger.acknowledged} message(s) written and acknowledged",
              file=sys.stderr, flush=True)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ledger.close()
