"""Helpers for the service tests: a free loopback port, a served process, and waiting for it.

The service runs as users run it, ``elsst-bench serve`` (or gunicorn) in a process of its own, bound to 127.0.0.1;
clients talk only to that address, and every wait is bounded. Registered as a plugin in ``conftest.py``: the
``zero_shot_served`` fixture is available everywhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import ENV, EXE

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class Served:
    """A server process on a loopback port: ``.base`` is its URL (``http://127.0.0.1:PORT/``)."""

    def __init__(self, args: list[str], *, env: dict | None = None, port: int | None = None, timeout: float = 180):
        self.port = port or free_port()
        self.base = f"http://{LOOPBACK}:{self.port}/"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"elsst-serve-{self.port}.log"
        self._log = open(self.log, "w")
        command = [a.format(port=self.port) for a in args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **ENV, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + "v1/", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer in {timeout} s:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self._log.close()


def serve_command(*args) -> list[str]:
    """``elsst-bench serve ... --port {port} --quiet``; ``{port}`` is filled in by :class:`Served`."""
    return [str(EXE), "serve", *map(str, args), "--port", "{port}", "--quiet"]


def gunicorn_command(workers: int = 2) -> list[str]:
    return [str(Path(sys.executable).parent / "gunicorn"), "-k", "uvicorn_worker.UvicornWorker", "-w", str(workers),
            "-b", f"{LOOPBACK}:{{port}}", "elsst_bench.serve:create_app()"]


@pytest.fixture(scope="module")
def zero_shot_served(small_dataset, tmp_path_factory):
    """The tests' base model served for the small dataset's two languages (projects elsst-de, elsst-en)."""
    server = Served(serve_command("--dataset", small_dataset.path, "-l", "en,de"),
                    env={"ELSST_BENCH_CACHE": str(tmp_path_factory.mktemp("serve-cache"))})
    yield server
    server.stop()
