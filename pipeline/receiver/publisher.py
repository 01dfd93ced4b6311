"""The receiver's group-commit Pub/Sub publisher: concurrent requests share Publish RPCs.

The HTTP edge (pipeline/receiver/main.py) hands each accepted body to ``publish`` and waits
for its future; this module owns everything between that call and Pub/Sub's message id:
the bounded queue, the sender threads, the gRPC channel (emulator-aware, with a capped
reconnect backoff) and a retry bounded by the request's own deadline. It imports nothing of
the receiver, so other publishers of deliveries use it too (the SQS relay takes its client
and its retry of transient errors).

Throughput: sharing RPCs cuts both the CPU per request here and Pub/Sub's per-RPC work;
bench/receiver.py measures it beside an empty handler.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Mapping

# Publish RPCs in flight at once per process. One already shares the RPC cost under load; a
# second keeps a message from waiting a whole round trip behind the RPC just sent (real Pub/Sub
# takes tens of ms). More only split batches, at a higher CPU cost per message.
PUBLISH_RPCS = 2
# One Publish RPC carries at most this much; Pub/Sub's own request limit is 10 MB, and a body
# over the batch size still travels alone (MAX_BODY_BYTES defaults to 1 MiB).
BATCH_MAX_MESSAGES = 100
BATCH_MAX_BYTES = 4 * 1024 * 1024
# Messages waiting to be sent, per process; beyond this a request gets 503 at once. Far above
# what the server's threads can have waiting, unless Pub/Sub is stalling.
QUEUE_MAX_MESSAGES = 1000
QUEUE_MAX_BYTES = 64 * 1024 * 1024

_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class PublishQueueFull(Exception):
    """Too many messages already wait for Pub/Sub in this process: answer 503 at once."""


class GroupCommitPublisher:
    """Publishes each message in the next Publish RPC, shared with whatever else is waiting.

    A "group commit": ``rpcs`` sender threads each take everything queued (up to
    ``max_messages``/``max_bytes``), send it as one PublishRequest and resolve each message's
    future with its id. Under load, arrivals pile up while an RPC is in flight and travel
    together in the next one, so the per-RPC cost (gRPC here, Pub/Sub's own) is shared; when
    idle, a message leaves at once instead of waiting for a batch timer. The library's batching
    ``pubsub_v1.PublisherClient`` waits ``max_latency`` for every batch and starts two threads
    per batch; in bench/receiver.py this had the lower latency and more requests/s, for the
    same server CPU per request.

    A request that stops waiting cancels its future: a message still queued is then never sent
    (clean 503); one already in an RPC may still be stored (at-least-once: the receiver's
    contract with the sender, pipeline/receiver/main.py). The queue is bounded: beyond it, ``publish`` raises PublishQueueFull rather
    than block a request with no deadline.
    """

    def __init__(
        self,
        client: Any,
        topic: str,
        *,
        retry: Any,
        timeout: float,
        rpcs: int = PUBLISH_RPCS,
        max_messages: int = BATCH_MAX_MESSAGES,
        max_bytes: int = BATCH_MAX_BYTES,
        max_queued_messages: int = QUEUE_MAX_MESSAGES,
        max_queued_bytes: int = QUEUE_MAX_BYTES,
    ):
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        self._client = client
        self._topic = topic
        self._retry = retry
        self._timeout = timeout
        self._rpcs = rpcs
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_queued_messages = max_queued_messages
        self._max_queued_bytes = max_queued_bytes
        # Raw protobuf classes: building proto-plus wrappers per message costs more than the RPC's share.
        self._raw_message = PubsubMessage.pb()
        self._raw_request = PublishRequest.pb()
        self._wrap_request = PublishRequest.wrap
        self._queue: deque[tuple[Any, Future, int]] = deque()
        self._queued_bytes = 0
        self._ready = threading.Condition(threading.Lock())
        self._senders: list[threading.Thread] = []

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> Future:
        size = len(data) + sum(len(k) + len(v) for k, v in attributes.items()) + 16
        message = self._raw_message(data=data, attributes=attributes)
        future: Future = Future()
        with self._ready:
            if len(self._queue) >= self._max_queued_messages or self._queued_bytes + size > self._max_queued_bytes:
                raise PublishQueueFull(f"{len(self._queue)} messages queued")
            self._queue.append((message, future, size))
            self._queued_bytes += size
            if len(self._senders) < self._rpcs:
                # Started on first use, in the serving process (gunicorn forks after import).
                sender = threading.Thread(target=self._send_forever, name="receiver-publish", daemon=True)
                self._senders.append(sender)
                sender.start()
            self._ready.notify()
        return future

    def _take(self) -> list[tuple[Any, Future, int]]:
        with self._ready:
            while not self._queue:
                self._ready.wait()
            batch, size = [], 0
            while self._queue and len(batch) < self._max_messages:
                if batch and size + self._queue[0][2] > self._max_bytes:
                    break
                item = self._queue.popleft()
                batch.append(item)
                size += item[2]
            self._queued_bytes -= size
            return batch

    def _send_forever(self) -> None:
        while True:
            # A future its request has cancelled (it gave up waiting) is dropped here, unsent.
            batch = [(message, future) for message, future, _ in self._take() if future.set_running_or_notify_cancel()]
            if batch:
                self._send(batch)

    def _send(self, batch: list[tuple[Any, Future]]) -> None:
        try:  # building the request inside too: a sender thread must never die with futures pending
            request = self._wrap_request(self._raw_request(topic=self._topic, messages=[m for m, _ in batch]))
            message_ids = self._client.publish(request=request, retry=self._retry, timeout=self._timeout).message_ids
            if len(message_ids) != len(batch):
                raise RuntimeError(f"Pub/Sub returned {len(message_ids)} ids for {len(batch)} messages")
        except BaseException as exc:  # every waiting request must learn of it (-> 503)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), message_id in zip(batch, message_ids):
            future.set_result(message_id)


def make_publisher(topic: str, *, timeout: float) -> GroupCommitPublisher:
    """A GroupCommitPublisher to ``topic`` over :func:`publisher_client`; each Publish RPC gives
    up after ``timeout`` seconds, retries of transient errors included."""
    return GroupCommitPublisher(publisher_client(), topic, retry=publish_retry(timeout), timeout=timeout)


def publisher_client() -> Any:
    """The generated (GAPIC) Publisher client, emulator-aware (PUBSUB_EMULATOR_HOST), with a
    capped gRPC reconnect backoff so a restarted Pub/Sub is found again within seconds."""
    import grpc
    from google.auth.credentials import AnonymousCredentials
    from google.pubsub_v1 import PublisherClient
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    emulator_host = os.environ.get("PUBSUB_EMULATOR_HOST")

    def channel(host: str, *, options: Any = (), **kwargs: Any) -> Any:
        options = [*options, *_CHANNEL_OPTIONS]
        if emulator_host:
            return grpc.insecure_channel(emulator_host, options=options)
        return PublisherGrpcTransport.create_channel(host, options=options, **kwargs)

    transport = PublisherGrpcTransport(
        channel=channel,
        credentials=AnonymousCredentials() if emulator_host else None,
        always_use_jwt_access=True,
    )
    return PublisherClient(transport=transport)


def publish_retry(timeout_seconds: float) -> Any:
    """Retry transient errors, but give up before the request's own deadline.

    The library's default retries a publish for 60 s; with a dead Pub/Sub an RPC would keep
    retrying long after its requests answered 503 (and hold up the messages queued behind it).
    Bounded like this, an RPC gives up about when its requests do.
    """
    return transient_retry(initial=0.05, maximum=1.0, timeout=max(0.5, timeout_seconds * 0.9))


def transient_retry(*, initial: float, maximum: float, timeout: float) -> Any:
    """Retry of the errors a Publish can recover from (exponential backoff, doubling), for ``timeout`` s."""
    from google.api_core import exceptions, retry

    return retry.Retry(
        initial=initial,
        maximum=maximum,
        multiplier=2.0,
        timeout=timeout,
        predicate=retry.if_exception_type(
            exceptions.Aborted,
            exceptions.DeadlineExceeded,
            exceptions.InternalServerError,
            exceptions.ResourceExhausted,
            exceptions.ServiceUnavailable,
            exceptions.Unknown,
            exceptions.Cancelled,
        ),
    )
