"""A real SQS API server for tests and benches: moto in server mode, started and stopped like the emulators.

``moto_server -H 127.0.0.1 -p PORT`` runs in its own process group (stopped as a group, no
orphan, see devkit/emulators.py); boto3 reaches it with ``endpoint_url`` and any
dummy keys. ``env()`` gives a subprocess (the relay under test) what it needs to find it.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from devkit.emulators import LOOPBACK, HttpEmulator, http_responds

REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoSqsServer(HttpEmulator):
    name = "moto-sqs"

    def _argv(self) -> list[str]:
        script = Path(sys.executable).with_name("moto_server")
        return [str(script), "-H", LOOPBACK, "-p", str(self.port)]

    def _env(self) -> dict[str, str]:
        return {**os.environ, **DUMMY_CREDENTIALS}

    def _ready(self) -> bool:
        return http_responds(f"{self.endpoint}/moto-api/")

    def env(self) -> dict[str, str]:
        """For the relay under test: dummy credentials and a region (the endpoint is an option)."""
        return {**DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client(
                "sqs", region_name=REGION, endpoint_url=self.endpoint,
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._client

    def create_queue(self, prefix: str = "canvas", *, visibility_timeout: int = 30) -> str:
        """A fresh queue; return its URL."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        return self.client.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})["QueueUrl"]

    def send_all(self, queue_url: str, bodies: list[bytes]) -> list[str]:
        """Send every body (10 per SendMessageBatch); return the SQS message ids in order."""
        ids: list[str] = []
        for start in range(0, len(bodies), 10):
            chunk = bodies[start:start + 10]
            entries = [{"Id": str(i), "MessageBody": body.decode("utf-8")} for i, body in enumerate(chunk)]
            response = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            assert not response.get("Failed"), response.get("Failed")
            by_id = {int(e["Id"]): e["MessageId"] for e in response["Successful"]}
            ids += [by_id[i] for i in range(len(chunk))]
        return ids

    def depth(self, queue_url: str) -> tuple[int, int]:
        """(visible, not visible): SQS's approximate counts (exact on moto)."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])
