"""The SQS relay's decisions, as plain functions: no boto3, no Pub/Sub client, no clock of their own.

What ``canvas-events sqs-relay`` publishes for each SQS message (the body unchanged, with the
attributes the HTTPS receiver sets plus where it came from), what it sends to the dead-letter
place instead, how it splits a receive batch into Publish requests, which receipts it deletes,
which leases it extends, how long a message it could not publish stays hidden before the next
try, and its progress line. The I/O around them is in ``pipeline/sqsrelay/relay.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Hashable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from pipeline.contract import (
    FALSE, KID, MAX_ATTRIBUTE_CHARS, RECEIVED_AT, SIGNED, SOURCE, SOURCE_SQS, SQS_MESSAGE_ID, TRUE,
)
from pipeline.core.decode import is_compact_jws
from pipeline.core.errors import EventError
from pipeline.deadletter import dead_letter_record
from pipeline.receiver.main import unverified_kid

# Pub/Sub refuses a PublishRequest over 10 MB (10,000,000 bytes; google-cloud-pubsub's
# _SERVER_PUBLISH_MAX_BYTES), so that is also the most one message can be. SQS carries at most
# 1 MiB per message, so a body Pub/Sub cannot take does not arrive from real SQS today; the
# check stays because a limit can be lowered (--max_message_bytes) and quotas change.
PUBSUB_MAX_REQUEST_BYTES = 10_000_000
PUBSUB_MAX_MESSAGES_PER_REQUEST = 1000
# Room for the topic name and protobuf framing in a request, and framing per message/attribute.
_REQUEST_OVERHEAD_BYTES = 1024
_MESSAGE_OVERHEAD_BYTES = 16
_ATTRIBUTE_OVERHEAD_BYTES = 8
SQS_MAX_MESSAGES_PER_RECEIVE = 10
SQS_MAX_ENTRIES_PER_BATCH = 10

DEAD_LETTER_STAGE = "sqs_relay"
OVERSIZED = "oversized"  # pipeline/core/errors.py: the same error_type the pipeline gives a body over its limit
REFUSED_BY_PUBSUB = "publish_refused"

_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class SqsMessage:
    """One received SQS message: what the relay needs of boto3's dict."""

    message_id: str
    receipt_handle: str
    body: bytes
    sent_at: datetime | None = None
    receive_count: int = 1


@dataclass(frozen=True)
class Outgoing:
    """A message to publish: the SQS body unchanged, its attributes, its size in a request."""

    message: SqsMessage
    attributes: dict[str, str]
    size: int


@dataclass(frozen=True)
class Rejected:
    """A message that goes to the dead-letter place instead of Pub/Sub, and why."""

    message: SqsMessage
    error_type: str
    reason: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class Settlement:
    """After a batch: receipts to delete (confirmed somewhere) and messages to hand back."""

    delete: list[SqsMessage]
    release: list[SqsMessage]


def from_sqs(raw: Mapping[str, Any]) -> SqsMessage:
    """boto3's ReceiveMessage entry -> SqsMessage. The body is SQS's text as UTF-8, byte for byte."""
    attributes = raw.get("Attributes") or {}
    sent_at = None
    sent_ms = attributes.get("SentTimestamp")
    if sent_ms and str(sent_ms).isdigit():
        sent_at = datetime.fromtimestamp(int(sent_ms) / 1000, tz=timezone.utc)
    count = attributes.get("ApproximateReceiveCount")
    body = raw.get("Body", "")
    return SqsMessage(
        message_id=str(raw["MessageId"]),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=body.encode("utf-8") if isinstance(body, str) else bytes(body),
        sent_at=sent_at,
        receive_count=int(count) if count and str(count).isdigit() else 1,
    )


def rfc3339(moment: datetime) -> str:
    """The receiver's received_at format: RFC 3339 UTC with milliseconds and a Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def relay_attributes(message: SqsMessage, now: datetime) -> dict[str, str]:
    """The attributes the receiver would set for this body, plus ``source`` and the SQS message id.

    ``received_at`` is when SQS took the message (its SentTimestamp), the moment the receiver's
    own stamp stands for; ``now`` only when SQS did not say. ``signed``/``kid`` as the receiver
    reads them (the kid unverified: the pipeline verifies). No ``edge_verified``: the relay
    verifies nothing. A body that is neither JWS nor JSON is still published (the pipeline
    dead-letters it with the original bytes), never dropped here.
    """
    attributes = {
        RECEIVED_AT: rfc3339(message.sent_at or now),
        SIGNED: FALSE,
        SOURCE: SOURCE_SQS,
        SQS_MESSAGE_ID: message.message_id[:MAX_ATTRIBUTE_CHARS],
    }
    stripped = message.body.strip(_WHITESPACE)
    if is_compact_jws(stripped):
        attributes[SIGNED] = TRUE
        try:
            kid = unverified_kid(stripped)
        except EventError:
            kid = None  # cannot verify either: the pipeline dead-letters it as malformed_jwt
        if kid:
            attributes[KID] = kid[:MAX_ATTRIBUTE_CHARS]
    return attributes


def message_size(data: bytes, attributes: Mapping[str, str]) -> int:
    """An upper bound of what one message adds to a PublishRequest."""
    return (
        len(data)
        + _MESSAGE_OVERHEAD_BYTES
        + sum(len(k.encode()) + len(v.encode()) + _ATTRIBUTE_OVERHEAD_BYTES for k, v in attributes.items())
    )


def plan_batch(
    messages: Iterable[SqsMessage], now: datetime, *, max_message_bytes: int = PUBSUB_MAX_REQUEST_BYTES
) -> tuple[list[Outgoing], list[Rejected]]:
    """Split a receive batch into what to publish and what Pub/Sub could not take (dead letters)."""
    limit = min(max_message_bytes, PUBSUB_MAX_REQUEST_BYTES - _REQUEST_OVERHEAD_BYTES)
    outgoing: list[Outgoing] = []
    rejected: list[Rejected] = []
    for message in messages:
        attributes = relay_attributes(message, now)
        size = message_size(message.body, attributes)
        if size > limit:
            rejected.append(Rejected(
                message, OVERSIZED,
                f"message of {size} bytes (body {len(message.body)}) is over the {limit}-byte publish limit",
                attributes))
        else:
            outgoing.append(Outgoing(message, attributes, size))
    return outgoing, rejected


def publish_requests(
    outgoing: Sequence[Outgoing],
    *,
    max_request_bytes: int = PUBSUB_MAX_REQUEST_BYTES,
    max_messages: int = PUBSUB_MAX_MESSAGES_PER_REQUEST,
) -> list[list[Outgoing]]:
    """Group messages into as few PublishRequests as the limits allow, in order.

    Ten SQS messages of 1 MiB are more than one request may carry, so a receive batch is not
    always one request. Every message fits alone (plan_batch sent the others aside).
    """
    budget = max_request_bytes - _REQUEST_OVERHEAD_BYTES
    requests: list[list[Outgoing]] = []
    current: list[Outgoing] = []
    size = 0
    for item in outgoing:
        if current and (size + item.size > budget or len(current) >= max_messages):
            requests.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        requests.append(current)
    return requests


def refused(item: Outgoing, error: str) -> Rejected:
    """A message Pub/Sub refused on its own with a permanent error (INVALID_ARGUMENT and kin)."""
    return Rejected(item.message, REFUSED_BY_PUBSUB, f"Pub/Sub refused the message: {error}"[:1000], item.attributes)


def dead_letter(rejected: Rejected, failed_at: datetime) -> dict[str, Any]:
    """The pipeline's dead-letter record (pipeline/deadletter.py): original body, attributes, reason."""
    return dead_letter_record(
        stage=DEAD_LETTER_STAGE,
        error=EventError(rejected.error_type, rejected.reason),
        payload=rejected.message.body,
        attributes=rejected.attributes,
        failed_at=failed_at,
    )


def dead_letter_name(message: SqsMessage, failed_at: datetime, attempt: str) -> str:
    """Object name under the dead-letter prefix: one file per message and attempt.

    ``attempt`` (unique per write) keeps a retry from overwriting an object, which the relay's
    service account (roles/storage.objectCreator) may not do.
    """
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in message.message_id)
    return f"sqs-relay/{failed_at.astimezone(timezone.utc):%Y-%m-%d}/{safe_id}-{attempt}.jsonl"


def settle(batch: Iterable[SqsMessage], confirmed: Iterable[str]) -> Settlement:
    """Delete exactly the messages confirmed (published, or written as a dead letter); release the rest."""
    done = set(confirmed)
    delete, release = [], []
    for message in batch:
        (delete if message.message_id in done else release).append(message)
    return Settlement(delete, release)


def chunks(items: Sequence[Any], size: int = SQS_MAX_ENTRIES_PER_BATCH) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def retry_visibility_seconds(receive_count: int, *, first: int = 5, cap: int = 300) -> int:
    """How long a message we failed to publish stays hidden before SQS hands it out again.

    Doubles with each receive (5 s, 10 s, 20 s, ... up to ``cap``), so a Pub/Sub outage is
    retried without a busy loop; the queue's redrive policy (if any) counts these receives too.
    """
    exponent = max(0, min(receive_count - 1, 16))
    return min(cap, first * 2 ** exponent)


def leases_to_extend(
    leases: Mapping[Hashable, float], now: float, *, visibility_seconds: float
) -> list[Hashable]:
    """Leases (receipt -> when its invisibility ends) with less than half a visibility timeout left."""
    margin = visibility_seconds / 2
    return [key for key, expires in leases.items() if expires - now < margin]


def receive_wait_seconds(idle_exit_seconds: float, long_poll_seconds: int) -> int:
    """Long-poll time: never longer than half the idle limit, so an idle exit is on time."""
    if idle_exit_seconds <= 0:
        return long_poll_seconds
    return max(1, min(long_poll_seconds, int(idle_exit_seconds // 2)))


def should_idle_exit(*, idle_exit_seconds: float, idle_for: float, holding: int, visible: int | None) -> bool:
    """Exit for idleness only when nothing arrived for long enough, nothing is in hand, and the
    queue itself says it holds nothing visible (an empty receive alone can be a slow server)."""
    if idle_exit_seconds <= 0 or holding or idle_for < idle_exit_seconds:
        return False
    return visible == 0


def region_from_queue_url(queue_url: str) -> str | None:
    """``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`` -> REGION (None for other hosts)."""
    host = urlsplit(queue_url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return None


def progress_line(
    *, relayed: int, relayed_since_last: int, dead_lettered: int, seconds: float,
    queue_depth: int | None, not_visible: int | None,
) -> str:
    """The once-a-minute line: messages relayed (total and lately) and the queue's approximate depth."""
    depth = "unknown" if queue_depth is None else f"~{queue_depth}"
    hidden = "" if not_visible is None else f", ~{not_visible} in flight"
    return (f"sqs-relay: relayed {relayed} (+{relayed_since_last} in {seconds:.0f} s), "
            f"dead-lettered {dead_lettered}, queue depth {depth}{hidden}")
