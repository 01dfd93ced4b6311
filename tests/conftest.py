"""Session fixtures shared by every test package: the real Pub/Sub and GCS emulators.

Each emulator starts lazily, the first time a test asks for it, and stops at the end of the
session (its whole process group; see devkit/emulators.py).

Environment: when an emulator starts, the fixture puts its variables (``PUBSUB_EMULATOR_HOST``,
``PUBSUB_PROJECT_ID``; ``STORAGE_EMULATOR_HOST``) into ``os.environ`` for the rest of the
session and restores the previous values at the end. Client libraries (google-cloud-pubsub,
Beam's ReadFromPubSub/gcsio, google-cloud-storage) read these when a client is created, so code
under test that runs in-process (a DirectRunner pipeline) finds the emulator without plumbing.
This is safe because nothing in this suite talks to real Google Cloud: a test that needs *no*
emulator and creates a Pub/Sub client would also reach the emulator, never production. Tests
that need a private emulator (e.g. one they stop and restart) create their own
``PubSubEmulator`` and pass its ``env()`` to the subprocess they test.

Also here, for every package: the one ``signer`` (a DemoSigner, kid ``k1``) and the one
``jwks_file`` holding its public key; ``anonymous_gcs`` for tests that reach the GCS emulator
through Beam's gcsio.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from devkit.emulators import GcsEmulator, PubSubEmulator
from devkit.signing import DemoSigner


def _export(env: dict[str, str]) -> dict[str, str | None]:
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    return previous


def _restore(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _serving(emulator):
    """Start ``emulator``, export its variables for the session, undo both at the end."""
    emulator.start()
    previous = _export(emulator.env())
    try:
        yield emulator
    finally:
        _restore(previous)
        emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """The real Pub/Sub emulator (project ``demo-project``), shared by the session."""
    yield from _serving(PubSubEmulator())


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """gcp-storage-emulator in memory, shared by the session; create your own buckets."""
    yield from _serving(GcsEmulator())


@pytest.fixture(scope="session")
def signer() -> DemoSigner:
    """The key the configured JWKS holds (kid k1), shared by the session."""
    return DemoSigner("k1")


@pytest.fixture(scope="session")
def jwks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jwks")


@pytest.fixture(scope="session")
def jwks_file(jwks_dir: Path, signer: DemoSigner) -> Path:
    """A JWKS file holding only the signer's public key (k1). Never rewrite it: the session shares it."""
    path = jwks_dir / "k1.json"
    signer.write_jwks(path)
    return path


@pytest.fixture
def anonymous_gcs() -> Iterator[None]:
    """Beam's gcsio asks for default credentials first (17 s of retries without any, STACK.md trap 8)."""
    from apache_beam.internal.gcp import auth as beam_auth

    cache = beam_auth._Credentials
    saved = (cache._credentials_init, cache._credentials)
    cache._credentials_init, cache._credentials = True, None
    try:
        yield
    finally:
        cache._credentials_init, cache._credentials = saved
