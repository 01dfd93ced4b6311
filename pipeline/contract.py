"""What the receiver (and the SQS relay) and the pipeline agree on, written once.

Both deployables import this module: the receiver's bundle carries it (mk/receiver.mk), so it
imports nothing but the standard library. It owns:

* the Pub/Sub message attributes a delivery travels with (names, values, and why each exists);
* the default issuer and leeway of signed deliveries, and the verifier settings as one typed
  object (:class:`VerifierSettings`) that ``pipeline.jwks_fetch.build_verifier`` takes;
* how a list of JWKS sources is written (repeat the option, or separate with commas);
* how a true/false setting is written (environment variables and pipeline options alike).

Attributes (``ATTRIBUTES`` below is the table). The message data is the delivery's body byte
for byte; the attributes describe how it arrived. The pipeline *uses* ``received_at`` (the
row's ``received_at`` and the arrival stamp, pipeline/transforms/read.py). Every other
attribute is for the operator: the pipeline decides nothing on them (it verifies every signed
body itself, whatever the edge did, so an attribute can never let a forged body in), but it
keeps them with the original payload in every dead-letter record (pipeline/deadletter.py), where
they say where a rejected delivery came from and what the edge saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# --- Pub/Sub attributes -------------------------------------------------------------------

RECEIVED_AT = "received_at"
CONTENT_TYPE = "content_type"
SIGNED = "signed"
KID = "kid"
EDGE_VERIFIED = "edge_verified"
EDGE_UNVERIFIED_REASON = "edge_unverified_reason"
SOURCE = "source"
SQS_MESSAGE_ID = "sqs_message_id"
SOURCE_FILE = "source_file"

TRUE = "true"
FALSE = "false"
SOURCE_SQS = "sqs"  # the value of SOURCE on messages of the SQS relay (the HTTPS receiver sets none)
EDGE_UNVERIFIED_JWKS = "jwks_unavailable"  # EDGE_UNVERIFIED_REASON: the keys were out of reach

# Pub/Sub allows 1024 bytes per value; the values set from input (kid, content type, SQS
# message id) are cut to this, being short by nature.
MAX_ATTRIBUTE_CHARS = 256

ATTRIBUTES: dict[str, str] = {
    RECEIVED_AT: "RFC 3339 UTC time the delivery was taken (the receiver's clock, or SQS's SentTimestamp "
                 "for the relay). Used by the pipeline: the row's received_at and the arrival stamp.",
    CONTENT_TYPE: "the request's Content-Type, when it had one (receiver only). For the operator: dead letters.",
    SIGNED: f"{TRUE!r} for a compact JWS body, else {FALSE!r}. For the operator: dead letters (the pipeline "
            "decides from the body itself).",
    KID: "the JWS header's kid (verified at the edge, or read without trust). For the operator: which key a "
         "rejected token named.",
    EDGE_VERIFIED: f"{TRUE!r} when the receiver checked the signature, {FALSE!r} when edge verification is on "
                   "but the keys were out of reach; absent when the edge does not verify. For the operator "
                   "only: the pipeline verifies every signed body.",
    EDGE_UNVERIFIED_REASON: f"why {EDGE_VERIFIED} is {FALSE!r} ({EDGE_UNVERIFIED_JWKS!r}). For the operator.",
    SOURCE: f"{SOURCE_SQS!r} on messages of the SQS relay. For the operator: where a dead letter came from.",
    SQS_MESSAGE_ID: "the SQS message id (relay only). For the operator: trace a dead letter back to SQS.",
    SOURCE_FILE: "set by the pipeline's batch replay (never on Pub/Sub): the file a line came from.",
}

# --- Signed deliveries ----------------------------------------------------------------------

DEFAULT_ISSUER = "https://live-events.canvas.instructure.com"
DEFAULT_LEEWAY_SECONDS = 60.0


def parse_sources(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """JWKS sources as a tuple: ``values`` is one string or several (a repeated option), and
    each may hold several sources separated by commas (a Flex Template parameter or an
    environment variable cannot repeat). Blanks are dropped."""
    if not values:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(s.strip() for value in values if value for s in str(value).split(",") if s.strip())


@dataclass(frozen=True)
class VerifierSettings:
    """How signed deliveries are verified: where the keys are, the expected issuer, the leeway
    on time claims, and whether ``exp`` is checked.

    ``issuer=None`` skips the ``iss`` check; ``verify_exp=False`` is for an operator replaying
    old signed data and is never switched off implicitly. ``sources`` goes through
    :func:`parse_sources`, so a comma-separated string is fine.
    """

    sources: tuple[str, ...] = ()
    issuer: str | None = DEFAULT_ISSUER
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    verify_exp: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", parse_sources(self.sources))
        if self.leeway_seconds < 0:
            raise ValueError("leeway_seconds must be >= 0")


# --- Settings ---------------------------------------------------------------------------

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str) -> bool | None:
    """``true``/``yes``/``on``/``1`` -> True, ``false``/``no``/``off``/``0`` -> False (any case,
    spaces around ignored); anything else -> None, for the caller to report in its own words."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None
