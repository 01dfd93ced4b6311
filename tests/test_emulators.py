"""The emulator launchers: real servers that start, serve, and leave no process behind.

These tests start private instances (they stop them), not the session fixtures.
"""
from __future__ import annotations

import os
import socket

import pytest

from devkit.emulators import GcsEmulator, PubSubEmulator, free_port, process_group_members

pytestmark = pytest.mark.slow


def _port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_pubsub_emulator_round_trip_then_no_process_left() -> None:
    emulator = PubSubEmulator(project="emu-test")
    with emulator:
        pids = emulator.group_pids()
        assert emulator.pid in pids
        assert emulator.env() == {"PUBSUB_EMULATOR_HOST": emulator.host, "PUBSUB_PROJECT_ID": "emu-test"}
        topic = emulator.create_topic("events")
        assert topic == "projects/emu-test/topics/events"
        sub = emulator.create_subscription(topic, "events-sub")
        assert sub == "projects/emu-test/subscriptions/events-sub"
        assert emulator.create_topic("events") == topic  # idempotent
        ids = [emulator.publish(topic, f"m{i}".encode(), n=str(i)) for i in range(3)]
        assert len(set(ids)) == 3
        messages = emulator.pull(sub, max_messages=3, timeout=20)
        assert sorted(m.data for m in messages) == [b"m0", b"m1", b"m2"]
        assert {m.data: m.attributes["n"] for m in messages} == {b"m0": "0", b"m1": "1", b"m2": "2"}
        # Acknowledged: a second pull finds nothing.
        assert emulator.pull(sub, max_messages=1, timeout=1) == []
    assert not emulator.running
    assert all(not os.path.exists(f"/proc/{pid}") for pid in pids)
    assert process_group_members(pids[0]) == []
    assert emulator.group_pids() == []
    assert not _port_accepts(emulator.port)


def test_pubsub_emulator_restarts_on_the_same_port() -> None:
    first = PubSubEmulator()
    with first:
        first.create_topic("before")
    second = PubSubEmulator(port=first.port)
    with second:
        assert second.host == first.host
        # A fresh in-memory server: topics do not survive a restart, recreating works.
        topic = second.create_topic("before")
        second.create_subscription(topic, "before-sub")
        second.publish(topic, b"again")
        assert [m.data for m in second.pull("before-sub", max_messages=1)] == [b"again"]
    assert second.group_pids() == []


def test_gcs_emulator_round_trip_then_no_process_left() -> None:
    emulator = GcsEmulator()
    with emulator:
        pids = emulator.group_pids()
        assert pids
        assert emulator.env() == {"STORAGE_EMULATOR_HOST": emulator.endpoint}
        emulator.create_bucket("emu-bucket")
        emulator.create_bucket("emu-bucket")  # idempotent
        blob = emulator.client.bucket("emu-bucket").blob("a/b.txt")
        blob.upload_from_string(b"hello")
        assert emulator.client.bucket("emu-bucket").blob("a/b.txt").download_as_bytes() == b"hello"
    assert emulator.group_pids() == []
    assert all(not os.path.exists(f"/proc/{pid}") for pid in pids)


def test_session_fixture_exports_pubsub_env(pubsub_emulator: PubSubEmulator) -> None:
    # In-process code under test (a DirectRunner pipeline) finds the emulator through os.environ.
    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.host
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()  # built from the environment, as the pipeline would
    topic = pubsub_emulator.create_topic("fixture-env")
    sub = pubsub_emulator.create_subscription(topic, "fixture-env-sub")
    publisher.publish(topic, b"via-env").result(timeout=30)
    assert [m.data for m in pubsub_emulator.pull(sub, max_messages=1)] == [b"via-env"]


def test_session_fixture_exports_gcs_env(gcs_emulator: GcsEmulator) -> None:
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.endpoint
    gcs_emulator.create_bucket("fixture-bucket")
    assert "fixture-bucket" in [b.name for b in gcs_emulator.client.list_buckets()]
