"""Start and stop the local stand-ins for Google Cloud: the Pub/Sub emulator and a GCS emulator.

Used by the test fixtures (tests/conftest.py), the benchmarks and ``python -m devkit.demo``; part
of the dev kit, never of the installed package. Both emulators are real servers run as subprocesses, never mocks:

- Pub/Sub: the Java emulator shipped with the Google Cloud CLI. We run its server script
  (``platform/pubsub-emulator/bin/cloud-pubsub-emulator``) directly instead of
  ``gcloud beta emulators pubsub start``, because stopping that wrapper leaves the Java server
  running as an orphan (see STACK.md). The script ``exec``s java, so the process we start *is*
  the server.
- GCS: ``gcp-storage-emulator`` from PyPI, in memory.
- Cloud Functions: ``functions-framework`` serving the receiver (gunicorn, as in production),
  see ``FunctionServer``.

Every server starts in its own session (so its own process group) and is stopped by signalling
the whole group: SIGTERM, then SIGKILL after a deadline; ``stop()`` then checks that no process
of the group is left. Readiness is polled over HTTP with a deadline, never a fixed sleep.

The helper methods (create_topic, publish, pull, create_bucket) build their clients explicitly
against the emulator, so they work whether or not ``PUBSUB_EMULATOR_HOST`` /
``STORAGE_EMULATOR_HOST`` are set in this process; ``env()`` gives those variables for the code
under test (a subprocess env, or os.environ in the test session).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence

DEFAULT_PROJECT = "demo-project"
LOOPBACK = "127.0.0.1"


class EmulatorError(RuntimeError):
    """An emulator failed to start or to stop cleanly."""


def free_port() -> int:
    """A TCP port on loopback that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def gcloud_sdk_root() -> Path:
    """The Google Cloud SDK root: $CLOUDSDK_ROOT_DIR, else asked of ``gcloud info``."""
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        return Path(os.environ["CLOUDSDK_ROOT_DIR"])
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError("gcloud is not on PATH; install the Google Cloud CLI with the pubsub-emulator component")
    with tempfile.TemporaryDirectory(prefix="cloudsdk-") as config:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            env={**os.environ, "CLOUDSDK_CONFIG": config},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    return Path(out.stdout.strip())


def pubsub_emulator_script() -> Path:
    script = gcloud_sdk_root() / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not script.is_file():
        raise EmulatorError(
            f"no Pub/Sub emulator at {script}; install it with `gcloud components install pubsub-emulator`"
        )
    return script


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes whose process group is ``pgid`` (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may contain spaces: split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry))
    return members


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); raise TimeoutError
    after ``timeout`` s.

    ``abort`` returns a reason to give up early (e.g. the server process exited).
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = condition()
        if value:
            return value
        if abort is not None:
            reason = abort()
            if reason:
                raise EmulatorError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def http_responds(url: str, timeout: float = 1.0) -> bool:
    """True when an HTTP server answers at all (any status code)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


class ServerProcess:
    """A server subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str):
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None

    def start(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.log_path = self.workdir / "server.log"
        # A file, not a pipe: nobody reads the output while tests run, and a full pipe blocks the server.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "CLOUDSDK_CONFIG": str(self.workdir / "cloudsdk")},
                cwd=self.workdir,
                start_new_session=True,
            )
        self.pgid = self.proc.pid  # start_new_session: the child leads its own group

    def exit_reason(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"exited with code {self.proc.returncode}; log tail:\n{self.log_tail()}"
        return None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def group_pids(self) -> list[int]:
        return [] if self.pgid is None else process_group_members(self.pgid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL what is left after ``timeout``; raise if anything survives."""
        if self.proc is None or self.pgid is None:
            return
        pgid = self.pgid
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_until(lambda: not process_group_members(pgid), timeout=max(1.0, timeout / 5), what="group exit")
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=timeout)  # reap the leader (no zombie left behind)
        try:
            wait_until(lambda: not process_group_members(pgid), timeout=timeout, what=f"{self.name} stop")
        except TimeoutError:
            raise EmulatorError(f"{self.name}: processes {process_group_members(pgid)} survived SIGKILL") from None
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pgid, sig)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass


class _Emulator:
    """Shared lifecycle: context manager, start/stop, pids for leak checks."""

    name = "emulator"

    def __init__(self, port: int | None, startup_timeout: float):
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._server = ServerProcess(self.name)

    @property
    def running(self) -> bool:
        return self._server.proc is not None and self._server.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._server.proc is None else self._server.proc.pid

    def group_pids(self) -> list[int]:
        """Live PIDs in the server's process group (empty once stopped)."""
        return self._server.group_pids()

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> "_Emulator":
        if self.running:
            return self
        self._server.start(self._argv(), self._env())
        try:
            wait_until(
                self._ready,
                timeout=self.startup_timeout,
                what=f"{self.name} on port {self.port}",
                abort=self._server.exit_reason,
            )
        except BaseException:
            self._server.stop()
            raise
        return self

    def stop(self) -> None:
        self._close_clients()
        self._server.stop()

    def _close_clients(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class PubSubEmulator(_Emulator):
    """The real Pub/Sub emulator on loopback. ``port`` fixed lets a test restart it on the same address."""

    name = "pubsub-emulator"

    def __init__(self, project: str = DEFAULT_PROJECT, port: int | None = None, startup_timeout: float = 90.0):
        super().__init__(port, startup_timeout)
        self.project = project
        self.host = f"{LOOPBACK}:{self.port}"
        self._publisher: Any = None
        self._subscriber: Any = None

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host, "PUBSUB_PROJECT_ID": self.project}

    def _argv(self) -> list[str]:
        return [str(pubsub_emulator_script()), f"--host={LOOPBACK}", f"--port={self.port}"]

    def _ready(self) -> bool:
        # The emulator answers "Ok" on GET / once its gRPC/HTTP server listens.
        return http_ok(f"http://{self.host}/")

    def topic_path(self, name: str) -> str:
        return name if name.startswith("projects/") else f"projects/{self.project}/topics/{name}"

    def subscription_path(self, name: str) -> str:
        return name if name.startswith("projects/") else f"projects/{self.project}/subscriptions/{name}"

    @property
    def publisher(self) -> Any:
        """A PublisherClient bound to this emulator (insecure channel, no credentials looked up)."""
        if self._publisher is None:
            import grpc
            from google.cloud import pubsub_v1
            from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

            transport = PublisherGrpcTransport(channel=grpc.insecure_channel(self.host))
            self._publisher = pubsub_v1.PublisherClient(transport=transport)
        return self._publisher

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            import grpc
            from google.cloud import pubsub_v1
            from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

            transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self.host))
            self._subscriber = pubsub_v1.SubscriberClient(transport=transport)
        return self._subscriber

    def create_topic(self, name: str) -> str:
        """Create a topic (idempotent); return ``projects/P/topics/NAME``."""
        from google.api_core.exceptions import AlreadyExists

        path = self.topic_path(name)
        try:
            self.publisher.create_topic(name=path, timeout=30)
        except AlreadyExists:
            pass
        return path

    def create_subscription(self, topic: str, name: str, ack_deadline_seconds: int = 60) -> str:
        """Create a pull subscription on ``topic`` (idempotent); return ``projects/P/subscriptions/NAME``."""
        from google.api_core.exceptions import AlreadyExists

        path = self.subscription_path(name)
        try:
            self.subscriber.create_subscription(
                request={"name": path, "topic": self.topic_path(topic), "ack_deadline_seconds": ack_deadline_seconds},
                timeout=30,
            )
        except AlreadyExists:
            pass
        return path

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message and wait for its id."""
        return str(self.publisher.publish(self.topic_path(topic), data, **attributes).result(timeout=30))

    def pull(self, subscription: str, max_messages: int = 100, timeout: float = 10) -> list[Any]:
        """Pull up to ``max_messages``, acknowledging them; return the PubsubMessage objects.

        Keeps pulling until ``max_messages`` arrived or ``timeout`` s passed with the last pull
        empty, so a caller expecting N messages can ask for N and wait for them.
        """
        path = self.subscription_path(subscription)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(messages) < max_messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                response = self.subscriber.pull(
                    request={"subscription": path, "max_messages": max_messages - len(messages)},
                    timeout=max(0.5, min(remaining, 5.0)),
                )
            except Exception as exc:  # DeadlineExceeded on an idle pull is normal
                if type(exc).__name__ in ("DeadlineExceeded", "RetryError"):
                    continue
                raise
            if response.received_messages:
                self.subscriber.acknowledge(
                    request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]},
                    timeout=30,
                )
                messages.extend(m.message for m in response.received_messages)
        return messages

    def _close_clients(self) -> None:
        for client in (self._publisher, self._subscriber):
            if client is None:
                continue
            try:
                if hasattr(client, "stop"):
                    client.stop()
                else:
                    client.close()
            except Exception:
                pass  # closing a client of a server going away must not mask the stop
        self._publisher = self._subscriber = None


class HttpEmulator(_Emulator):
    """An emulator spoken to over HTTP at ``endpoint``, with one lazily made ``_client`` closed on stop."""

    def __init__(self, port: int | None = None, startup_timeout: float = 60.0):
        super().__init__(port, startup_timeout)
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self._client: Any = None

    def _close_clients(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass  # closing a client of a server going away must not mask the stop
        self._client = None


class GcsEmulator(HttpEmulator):
    """gcp-storage-emulator, in memory, on loopback."""

    name = "gcs-emulator"

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def _argv(self) -> list[str]:
        return [
            sys.executable, "-m", "gcp_storage_emulator", "start",
            f"--host={LOOPBACK}", f"--port={self.port}", "--in-memory",
        ]

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint}/storage/v1/b?project={DEFAULT_PROJECT}")

    @property
    def client(self) -> Any:
        """An anonymous storage.Client against this emulator (no credential lookup, see STACK.md #8)."""
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            self._client = storage.Client(
                project=DEFAULT_PROJECT,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.endpoint},
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        from google.api_core.exceptions import Conflict

        try:
            self.client.create_bucket(name)
        except Conflict:
            pass


REPO_ROOT = Path(__file__).resolve().parent.parent
RECEIVER_SOURCE = REPO_ROOT / "pipeline" / "receiver" / "main.py"


class FunctionServer(_Emulator):
    """An HTTP Cloud Function served by functions-framework on loopback (gunicorn, like production).

    ``env`` is the function's environment (e.g. PUBSUB_TOPIC and the Pub/Sub emulator's
    ``env()``), added to this process's environment. ``workers``/``threads`` go to gunicorn
    through functions-framework's WORKERS/THREADS variables (its default: 1 worker, 4 threads
    per core).
    """

    name = "function-server"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        target: str = "receive",
        source: str | os.PathLike[str] = RECEIVER_SOURCE,
        port: int | None = None,
        workers: int | None = None,
        threads: int | None = None,
        startup_timeout: float = 60.0,
    ):
        super().__init__(port, startup_timeout)
        self.url = f"http://{LOOPBACK}:{self.port}/"
        self.target = target
        self.source = Path(source)
        self.extra_env = dict(env or {})
        if workers is not None:
            self.extra_env["WORKERS"] = str(workers)
        if threads is not None:
            self.extra_env["THREADS"] = str(threads)

    def _argv(self) -> list[str]:
        return [
            sys.executable, "-m", "functions_framework",
            f"--target={self.target}", f"--source={self.source}",
            f"--host={LOOPBACK}", f"--port={self.port}",
        ]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        # The receiver imports the pipeline package: make it importable from a plain checkout too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def _ready(self) -> bool:
        # GET is answered (405 by the receiver) as soon as gunicorn has loaded the function.
        return http_responds(self.url)

    def log_text(self) -> str:
        """The server's output so far (stderr included), e.g. to check what the function logged."""
        path = self._server.log_path
        return path.read_text(errors="replace") if path is not None and path.exists() else ""
