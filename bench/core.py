"""Throughput of the pure core on one core: raw signed body -> normalized row, against its floor.

Why: the Beam pipeline's per-element cost is dominated by verification and normalization;
this measures them without Beam, next to the cost nothing can beat (``cryptography`` RSA
verify plus ``orjson`` parsing of the same tokens), so a regression shows up as a ratio
that is stable on a noisy, shared machine (absolute figures are not).

    .venv/bin/python bench/core.py [--bodies 20000] [--repeats 3] [--chunk 250] [--profile]

Bodies are generated events (devkit.deliveries: every documented event name, Canvas and Caliper
formats, every one distinct) signed with a DemoSigner like Canvas signs deliveries (RS256, kid,
iss/iat/exp claims). Generating and signing them is setup and is not timed.
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.decode import decode_delivery  # noqa: E402
from pipeline.core.errors import EventError  # noqa: E402
from pipeline.core.normalize import normalize  # noqa: E402
from pipeline.contract import DEFAULT_ISSUER, VerifierSettings  # noqa: E402
from pipeline.jwks_fetch import build_verifier  # noqa: E402
from devkit import deliveries  # noqa: E402
from devkit.signing import DemoSigner  # noqa: E402

GOAL_EVENTS_PER_SECOND = 10_000
GOAL_RATIO = 0.60


def signed_bodies(signer: DemoSigner, count: int, now: int) -> list[bytes]:
    claims = {"iss": DEFAULT_ISSUER, "iat": now, "exp": now + 3600}
    return [signer.sign({**payload, **claims}) for payload in deliveries.payloads(count)]


def b64url_decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def run_floor(bodies: list[bytes], signer: DemoSigner) -> int:
    """split + base64 + RS256 verify + orjson of header and payload: the least any verifier does."""
    key, pkcs1, sha256 = signer.public_key, padding.PKCS1v15(), hashes.SHA256()
    for body in bodies:
        header, payload, signature = body.split(b".")
        orjson.loads(b64url_decode(header))
        key.verify(b64url_decode(signature), body[: len(header) + 1 + len(payload)], pkcs1, sha256)
        orjson.loads(b64url_decode(payload))
    return len(bodies)


def make_run_core(verifier: Any, received_at: datetime) -> Callable[[list[bytes]], int]:
    def run_core(bodies: list[bytes]) -> int:
        """decode_delivery (JwtVerifier) + normalize (with event id): the real per-body work."""
        rows = 0
        for body in bodies:
            for decoded in decode_delivery(body, verifier=verifier, allow_unsigned=False):
                try:
                    normalize(decoded, received_at=received_at)
                    rows += 1
                except EventError:
                    pass
        return rows

    return run_core


def make_run_verify(verifier: Any) -> Callable[[list[bytes]], int]:
    def run_verify(bodies: list[bytes]) -> int:
        for body in bodies:
            verifier.verify(body)
        return len(bodies)

    return run_verify


def timed(fn: Callable[[list[bytes]], int], bodies: list[bytes]) -> tuple[float, int]:
    # CPU time of this (single-threaded) process: "per second on one core", and far less
    # disturbed than wall time by other work on a shared machine.
    start = time.process_time()
    produced = fn(bodies)
    return time.process_time() - start, produced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=20_000, help="signed bodies to process (default 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each measurement; medians are shown (default 3)")
    parser.add_argument("--chunk", type=int, default=250, help="bodies per interleaved timing slice (default 250)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one pass of the core path")
    args = parser.parse_args(argv)

    now = int(time.time())
    signer = DemoSigner("bench-key")
    start = time.perf_counter()
    bodies = signed_bodies(signer, args.bodies, now)
    print(f"signed {len(bodies)} bodies in {time.perf_counter() - start:.1f} s (setup, not timed)")
    with tempfile.TemporaryDirectory() as tmp:
        jwks = Path(tmp) / "jwks.json"
        signer.write_jwks(jwks)
        verifier = build_verifier(VerifierSettings(sources=(str(jwks),)))
    assert verifier is not None
    received_at = datetime.now(timezone.utc)
    run_core = make_run_core(verifier, received_at)
    run_verify = make_run_verify(verifier)

    core_t, floor_t, verify_t = [], [], []
    chunk_ratios: list[float] = []  # floor seconds / core seconds, per chunk: same bodies, same moment
    events = 0
    chunks = [bodies[i:i + args.chunk] for i in range(0, len(bodies), args.chunk)]
    runs: list[Callable[[list[bytes]], int]] = [run_core, lambda b: run_floor(b, signer), run_verify]
    for _ in range(args.repeats):
        # Interleaved chunk by chunk (a few ms each), rotating the order, so that a change of
        # speed of this shared machine (it changes within seconds) hits all three alike.
        totals, events = [0.0, 0.0, 0.0], 0
        for number, chunk in enumerate(chunks):
            chunk_seconds = [0.0, 0.0, 0.0]
            for k in range(3):
                which = (number + k) % 3
                seconds, produced = timed(runs[which], chunk)
                chunk_seconds[which] = seconds
                if which == 0:
                    events += produced
            totals = [t + c for t, c in zip(totals, chunk_seconds)]
            if chunk_seconds[0] > 0:
                chunk_ratios.append(chunk_seconds[1] / chunk_seconds[0])
        core_t.append(totals[0])
        floor_t.append(totals[1])
        verify_t.append(totals[2])

    n = len(bodies)
    core_s, floor_s, verify_s = (statistics.median(t) for t in (core_t, floor_t, verify_t))
    pass_ratios = sorted(f / c for c, f in zip(core_t, floor_t))
    events_per_s = events / core_s
    bodies_per_s = n / core_s
    floor_per_s = n / floor_s
    # The ratio is the median over all chunks of all passes: each chunk's core and floor ran
    # on the same bodies within ~50 ms of each other, so a slow spell of the machine (they
    # come and go within seconds here) cannot favour one side, and the median drops outliers.
    ratio = statistics.median(chunk_ratios)
    quartiles = statistics.quantiles(chunk_ratios, n=4) if len(chunk_ratios) > 1 else [ratio] * 3
    print(f"core  (decode_delivery + JwtVerifier + normalize + event id): {events_per_s:,.0f} events/s "
          f"({bodies_per_s:,.0f} bodies/s; {events} rows from {n} bodies)")
    print(f"  of which JwtVerifier.verify alone:                        {n / verify_s:,.0f} bodies/s")
    print(f"floor (split + base64 + cryptography verify + orjson):        {floor_per_s:,.0f} bodies/s")
    print(f"ratio core/floor (per body): {ratio:.1%}   "
          f"goal: >= {GOAL_EVENTS_PER_SECOND:,} events/s and >= {GOAL_RATIO:.0%} of the floor -> "
          f"{'met' if events_per_s >= GOAL_EVENTS_PER_SECOND and ratio >= GOAL_RATIO else 'NOT met'}")
    print(f"ratio = median of {len(chunk_ratios)} chunk ratios (quartiles {quartiles[0]:.1%} / {quartiles[2]:.1%}; "
          f"per pass of all bodies: {pass_ratios[0]:.0%}..{pass_ratios[-1]:.0%}); rates are medians of "
          f"{args.repeats} passes; process CPU time on one core")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_core(bodies)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
