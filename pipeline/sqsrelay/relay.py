"""The SQS relay's I/O: receive from SQS, publish to Pub/Sub, delete what Pub/Sub confirmed.

At least once, never less. A message is deleted from SQS only after Pub/Sub returned its id
(or, for a body Pub/Sub cannot take, after its dead-letter record was written). Until then
it is only invisible: a relay killed at any moment leaves it to reappear after the queue's
visibility timeout and be relayed again (the pipeline's content-based dedupe drops the copy).

Several receive loops run at once (``receivers``), each taking up to 10 messages per long
poll, publishing them in as few Publish RPCs as the size limits allow and deleting them in
one DeleteMessageBatch. A lease keeper extends the invisibility of messages whose publish runs
long (half a visibility timeout before it ends). A publish that fails after its retries hands
the messages back with a growing visibility timeout (plan.retry_visibility_seconds).

``stop()`` (SIGTERM) stops new receives; what is in flight is published and deleted, then
``run()`` returns. Decisions are in plan.py; this module only does what they say.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from pipeline.deadletter import encode_record
from pipeline.sqsrelay import plan
from pipeline.sqsrelay.plan import Outgoing, Rejected, SqsMessage

logger = logging.getLogger("canvas_sqs_relay")

LONG_POLL_SECONDS = 5  # a receive in flight at SIGTERM returns within Cloud Run's 10 s grace
_ERROR_BACKOFF_SECONDS = (0.5, 1, 2, 5, 10)
# Below this the lease keeper (which extends at half the timeout) has little slack for a slow SQS.
MIN_SAFE_VISIBILITY_SECONDS = 10


class PermanentPublishError(Exception):
    """Pub/Sub refused the request for what it holds (INVALID_ARGUMENT and kin): retrying cannot help."""


class Publisher(Protocol):
    def publish(self, messages: Sequence[tuple[bytes, dict[str, str]]]) -> list[str]:
        """Publish in one request; return the message ids. Raise PermanentPublishError or anything else."""


class DeadLetterSink(Protocol):
    def write(self, name: str, data: bytes) -> None: ...


class PubSubPublisher:
    """One Publish RPC per call on the generated client; transient errors retried up to ``timeout``.

    The client and the transient errors retried are the receiver's (pipeline/receiver/publisher.py).
    """

    def __init__(self, topic: str, *, timeout: float = 60.0, client: Any = None):
        from google.api_core import exceptions
        from google.pubsub_v1.types import PubsubMessage

        from pipeline.receiver.publisher import publisher_client, transient_retry

        self.topic = topic
        self._timeout = timeout
        self._client = client if client is not None else publisher_client()
        self._message = PubsubMessage
        self._permanent = (exceptions.InvalidArgument, exceptions.FailedPrecondition, exceptions.OutOfRange)
        self._retry = transient_retry(initial=0.1, maximum=5.0, timeout=timeout)

    def publish(self, messages: Sequence[tuple[bytes, dict[str, str]]]) -> list[str]:
        request = [self._message(data=data, attributes=attributes) for data, attributes in messages]
        try:
            response = self._client.publish(topic=self.topic, messages=request, retry=self._retry,
                                            timeout=self._timeout)
        except self._permanent as exc:
            raise PermanentPublishError(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
        ids = list(response.message_ids)
        if len(ids) != len(messages):
            raise RuntimeError(f"Pub/Sub returned {len(ids)} ids for {len(messages)} messages")
        return ids

    def close(self) -> None:
        transport = getattr(self._client, "transport", None)
        if transport is not None:
            transport.close()


class LocalDeadLetters:
    """Dead-letter records as files under a local directory (written whole: temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class GcsDeadLetters:
    """Dead-letter records as objects under a gs://BUCKET/PREFIX (STORAGE_EMULATOR_HOST honoured)."""

    def __init__(self, url: str, client: Any = None):
        bucket, _, prefix = url[len("gs://"):].partition("/")
        self.prefix = prefix.rstrip("/")
        if client is None:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project="emulator", credentials=AnonymousCredentials())
            else:
                client = storage.Client()
        self._bucket = client.bucket(bucket)

    def write(self, name: str, data: bytes) -> None:
        blob_name = f"{self.prefix}/{name}" if self.prefix else name
        self._bucket.blob(blob_name).upload_from_string(data, content_type="application/x-ndjson")


def dead_letter_sink(output: str | None) -> DeadLetterSink | None:
    if not output:
        return None
    return GcsDeadLetters(output) if output.startswith("gs://") else LocalDeadLetters(output)


@dataclass
class RelayStats:
    relayed: int = 0
    dead_lettered: int = 0
    released: int = 0
    receives: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class Relay:
    """Receive loops, a lease keeper and a progress reporter around plan.py's decisions."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        publisher: Publisher,
        *,
        dead_letters: DeadLetterSink | None = None,
        receivers: int = 4,
        idle_exit_seconds: float = 0,
        progress_seconds: float = 60,
        max_message_bytes: int = plan.PUBSUB_MAX_REQUEST_BYTES,
        long_poll_seconds: int = LONG_POLL_SECONDS,
        drain_seconds: float = 8.0,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        if receivers < 1:
            raise ValueError("receivers must be at least 1")
        self.sqs = sqs
        self.queue_url = queue_url
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.receivers = receivers
        self.idle_exit_seconds = idle_exit_seconds
        self.progress_seconds = progress_seconds
        self.max_message_bytes = max_message_bytes
        self.wait_seconds = plan.receive_wait_seconds(idle_exit_seconds, long_poll_seconds)
        self.drain_seconds = drain_seconds
        self.now = now
        self.stats = RelayStats()
        self.visibility_seconds = 30.0
        self._stopping = threading.Event()
        self._leases: dict[str, float] = {}  # receipt handle -> monotonic time its invisibility ends
        self._leases_lock = threading.Lock()
        self._last_message = time.monotonic()
        self._loops_done = threading.Event()
        self._progress_mark = (0, time.monotonic())  # (relayed, when) at the last progress line

    # ---- lifecycle ----------------------------------------------------------------------

    def check_queue(self) -> None:
        """Fail fast (credentials, queue URL, permissions) and learn the visibility timeout."""
        response = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])
        self.visibility_seconds = float(response["Attributes"]["VisibilityTimeout"])
        if self.visibility_seconds < MIN_SAFE_VISIBILITY_SECONDS:
            logger.warning("sqs-relay: the queue's visibility timeout is %.0f s: a message may be handed out again "
                           "before its publish is confirmed (copies, never losses); %d s or more is safer",
                           self.visibility_seconds, MIN_SAFE_VISIBILITY_SECONDS)

    def stop(self) -> None:
        """Ask for a graceful stop: no new receives; what is in flight finishes and is deleted."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> RelayStats:
        self.check_queue()
        self._last_message = time.monotonic()
        self._progress_mark = (0, time.monotonic())
        loops = [threading.Thread(target=self._receive_loop, name=f"sqs-receive-{i}", daemon=True)
                 for i in range(self.receivers)]
        keeper = threading.Thread(target=self._keep_leases, name="sqs-leases", daemon=True)
        reporter = threading.Thread(target=self._report_progress, name="sqs-progress", daemon=True)
        for thread in (*loops, keeper, reporter):
            thread.start()
        while not self._stopping.wait(0.2):
            if self._idle_for_long_enough():
                logger.info("sqs-relay: idle for %.0f s, exiting", self.idle_exit_seconds)
                self._stopping.set()
        deadline = time.monotonic() + self.wait_seconds + self.drain_seconds
        for thread in loops:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._loops_done.set()
        stuck = [t.name for t in loops if t.is_alive()]
        if stuck:  # a publish still retrying: hand its messages back rather than hold them
            self._release_all_leases()
            logger.warning("sqs-relay: %d receive loops still busy at exit; their messages were handed back",
                           len(stuck))
        self._log_progress()
        return self.stats

    def _idle_for_long_enough(self) -> bool:
        if self.idle_exit_seconds <= 0:
            return False
        with self._leases_lock:  # messages in hand hold a lease until they are settled
            holding = len(self._leases)
            idle_for = time.monotonic() - self._last_message
        if holding or idle_for < self.idle_exit_seconds:
            return False
        visible = self._queue_depth()[0]
        if visible:  # receives came back empty, yet the queue holds messages: keep going
            with self._leases_lock:
                self._last_message = time.monotonic()
        return plan.should_idle_exit(idle_exit_seconds=self.idle_exit_seconds, idle_for=idle_for,
                                     holding=holding, visible=visible)

    # ---- the receive loop -----------------------------------------------------------------

    def _receive_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._receive_once()
                failures = 0
            except Exception as exc:  # SQS or Pub/Sub trouble beyond the clients' own retries
                self.stats.add(errors=1)
                delay = _ERROR_BACKOFF_SECONDS[min(failures, len(_ERROR_BACKOFF_SECONDS) - 1)]
                failures += 1
                logger.error("sqs-relay: %s: %s; retrying in %.1f s", type(exc).__name__, _short(exc), delay)
                self._stopping.wait(delay)

    def _receive_once(self) -> None:
        asked_at = time.monotonic()
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=plan.SQS_MAX_MESSAGES_PER_RECEIVE,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
        raw = response.get("Messages") or []
        self.stats.add(receives=1)
        if not raw:
            return
        batch = [plan.from_sqs(m) for m in raw]
        with self._leases_lock:
            self._last_message = time.monotonic()
            for message in batch:  # the invisibility started when we asked, not when we got the answer
                self._leases[message.receipt_handle] = asked_at + self.visibility_seconds
        try:
            self._relay(batch)
        finally:
            with self._leases_lock:
                for message in batch:
                    self._leases.pop(message.receipt_handle, None)

    def _relay(self, batch: list[SqsMessage]) -> None:
        outgoing, rejected = plan.plan_batch(batch, self.now(), max_message_bytes=self.max_message_bytes)
        confirmed: list[str] = []
        for request in plan.publish_requests(outgoing):
            done, refused, error = self._publish(request)
            confirmed += done
            rejected += refused
            if error is not None:  # what was not confirmed is released below, to come back later
                logger.error("sqs-relay: publish of %d messages failed: %s: %s", len(request) - len(done),
                             type(error).__name__, _short(error))
        dead_lettered = self._write_dead_letters(rejected)
        settlement = plan.settle(batch, confirmed + dead_lettered)
        try:
            self._delete(settlement.delete)  # may raise: what it leaves comes back after the visibility timeout
        finally:  # the failed publishes still get their planned backoff, and the stats stay true
            if settlement.release:
                self._release(settlement.release)
            self.stats.add(relayed=len(confirmed), dead_lettered=len(dead_lettered),
                           released=len(settlement.release))

    def _publish(self, request: list[Outgoing]) -> tuple[list[str], list[Rejected], Exception | None]:
        """Publish one request; on a permanent refusal, each message alone (to find the culprit)."""
        try:
            self.publisher.publish([(item.message.body, item.attributes) for item in request])
            return [item.message.message_id for item in request], [], None
        except PermanentPublishError as exc:
            if len(request) == 1:
                return [], [plan.refused(request[0], str(exc))], None
        except Exception as exc:
            return [], [], exc
        done: list[str] = []
        refused: list[Rejected] = []
        for item in request:
            ids, alone_refused, error = self._publish([item])
            if error is not None:
                return done, refused, error
            done += ids
            refused += alone_refused
        return done, refused, None

    def _write_dead_letters(self, rejected: list[Rejected]) -> list[str]:
        """Write each record; return the ids written. Without a place, keep them in SQS (never deleted)."""
        written: list[str] = []
        for item in rejected:
            failed_at = self.now()
            if self.dead_letters is None:
                logger.error("sqs-relay: message %s not relayed (%s: %s) and no --dead_letter_output: left in "
                             "the queue (its redrive policy, if any, moves it to the queue's dead-letter queue)",
                             item.message.message_id, item.error_type, item.reason)
                continue
            try:
                self.dead_letters.write(plan.dead_letter_name(item.message, failed_at, uuid.uuid4().hex[:8]),
                                        encode_record(plan.dead_letter(item, failed_at)))
            except Exception as exc:  # transient storage trouble: the message stays in SQS and comes back
                logger.error("sqs-relay: dead letter for %s not written: %s: %s", item.message.message_id,
                             type(exc).__name__, _short(exc))
                continue
            logger.warning("sqs-relay: message %s dead-lettered: %s: %s", item.message.message_id,
                           item.error_type, item.reason)
            written.append(item.message.message_id)
        return written

    # ---- SQS bookkeeping ---------------------------------------------------------------------

    def _delete(self, messages: list[SqsMessage]) -> None:
        for chunk in plan.chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)]
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in response.get("Failed") or []:
                # The receipt is stale (the message was already handed out again): it will be
                # relayed once more, and the pipeline's dedupe drops the copy.
                logger.warning("sqs-relay: delete failed: %s %s", failure.get("Code"), failure.get("Message", "")[:200])

    def _release(self, messages: list[SqsMessage]) -> None:
        """Hand messages back to SQS after a while (growing with each receive), not at once."""
        for chunk in plan.chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle,
                        "VisibilityTimeout": plan.retry_visibility_seconds(m.receive_count)}
                       for i, m in enumerate(chunk)]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # they come back after the visibility timeout anyway
                logger.warning("sqs-relay: could not hand back %d messages: %s", len(chunk), type(exc).__name__)

    def _release_all_leases(self) -> None:
        with self._leases_lock:
            receipts = list(self._leases)
            self._leases.clear()
        for chunk in plan.chunks(receipts):
            entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:
                logger.warning("sqs-relay: could not hand back %d messages: %s", len(chunk), type(exc).__name__)

    def _keep_leases(self) -> None:
        """Extend the invisibility of messages still being worked on, before SQS hands them out again."""
        tick = max(0.2, min(5.0, self.visibility_seconds / 4))
        while not self._loops_done.wait(tick):
            now = time.monotonic()
            with self._leases_lock:
                due = plan.leases_to_extend(self._leases, now, visibility_seconds=self.visibility_seconds)
            for chunk in plan.chunks(due):
                entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": int(self.visibility_seconds)}
                           for i, r in enumerate(chunk)]
                try:
                    response = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
                except Exception as exc:
                    logger.warning("sqs-relay: visibility extension failed: %s", type(exc).__name__)
                    continue
                failed = {int(f["Id"]) for f in response.get("Failed") or []}
                with self._leases_lock:
                    for i, receipt in enumerate(chunk):
                        if i not in failed and receipt in self._leases:
                            self._leases[receipt] = now + self.visibility_seconds

    # ---- progress ------------------------------------------------------------------------------

    def _report_progress(self) -> None:
        while not self._stopping.wait(self.progress_seconds):
            self._log_progress()

    def _queue_depth(self) -> tuple[int | None, int | None]:
        """(visible, not visible): SQS's approximate counts, (None, None) when it does not answer."""
        try:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])
        except Exception as exc:
            logger.warning("sqs-relay: queue depth unavailable: %s", type(exc).__name__)
            return None, None

    def _log_progress(self) -> None:
        count, now = self.stats.relayed, time.monotonic()
        last_count, last_time = self._progress_mark
        self._progress_mark = (count, now)
        depth, not_visible = self._queue_depth()
        logger.info(plan.progress_line(
            relayed=count, relayed_since_last=count - last_count, dead_lettered=self.stats.dead_lettered,
            seconds=now - last_time, queue_depth=depth, not_visible=not_visible))


def _short(exc: BaseException) -> str:
    """An error's message on one line, bounded (never a payload: these come from clients' errors)."""
    return " ".join(str(exc).split())[:300]
