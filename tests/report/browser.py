"""Headless Chromium for the report tests: find or install it, load a page offline, read the DOM.

Chromium comes from the distribution's packages. ``chromium_binary()`` installs it with
apt-get where it is missing and the test runs as root; otherwise the caller skips with the
reason. Each load uses a new empty profile, no network (``unshare -n`` where the machine
allows it) and ``--enable-logging=stderr --v=0``, which makes Chromium log every console
message of the page (``console.*`` calls and uncaught exceptions alike) as a ``CONSOLE`` line.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tests.deploy.gcloud_env import isolated

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0")
_CONSOLE = re.compile(r":CONSOLE[:(\]]")


def chromium_binary() -> tuple[str | None, str]:
    """(path to chromium, "") or (None, why it is not available)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium is not installed and apt-get cannot run here (not root): apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "chromium"]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:  # a new machine has no package lists yet
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], capture_output=True, text=True,
                       timeout=600, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, timeout=900, env=env)
    found = shutil.which("chromium")
    if found:
        return found, ""
    return None, f"apt-get install chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"


@dataclass(frozen=True)
class Page:
    dom: str
    console: list[str]  # every console message the page produced
    log: str


def load(chromium: str, html_file: Path, timeout: float = 90) -> Page:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        # Its own process group, so that the browser's helper processes go with it.
        proc = subprocess.Popen(
            isolated([chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", html_file.resolve().as_uri()]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc.returncode != 0 or "<html" not in stdout:
        raise AssertionError(f"chromium failed (exit {proc.returncode}): {stderr[-2000:]}")
    console = [line for line in stderr.splitlines() if _CONSOLE.search(line)]
    return Page(stdout, console, stderr)


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "data-figure" in values:
            self.figures[values["data-figure"] or ""] = values.get("data-value") or ""
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if values.get(name):
                self.references.append(f"{tag} {name}={values[name]}")


def dom_figures(dom: str) -> dict[str, str]:
    """``data-figure`` name -> ``data-value`` of every figure in the rendered DOM."""
    parser = _Figures()
    parser.feed(dom)
    return parser.figures


def dom_references(dom: str) -> list[str]:
    """Every attribute that could make the browser fetch something (src, href, ...)."""
    parser = _Figures()
    parser.feed(dom)
    return parser.references
