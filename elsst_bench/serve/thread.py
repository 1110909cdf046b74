"""The one thread that runs a serving process's torch work.

torch's CPU kernels run on an OpenMP team that belongs to the thread that calls them. Once a second thread has
called torch (a request thread after the main thread built the model, or two request threads), every call is
slower, on whichever thread: measured on 2 cores with multilingual-e5-small, a title's suggestion went from 19 ms
to 30 ms, and stayed there. So every torch call of the suggester (loading and merging the model, encoding the pools,
encoding each request) runs on this one daemon thread; callers on any thread wait for it. Calls queue, which is
also the right concurrency for one model on a small CPU: one encoding at a time, with every core.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future


class EncoderThread:
    """A single daemon worker: ``run(fn, *args)`` calls ``fn`` on it and returns (or raises) what it did."""

    def __init__(self, name: str = "elsst-encoder"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)  # never holds up an exit
        self._thread.start()

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as err:  # noqa: BLE001 - handed to the caller, which re-raises it
                    future.set_exception(err)

    def submit(self, fn, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)``; the future holds its result (an async caller awaits
        ``asyncio.wrap_future`` of it, with no thread of its own in between)."""
        future: Future = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def run(self, fn, *args, **kwargs):
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()


_THREAD: EncoderThread | None = None
_LOCK = threading.Lock()


def encoder_thread() -> EncoderThread:
    """The process's encoder thread (started on first use)."""
    global _THREAD
    with _LOCK:
        if _THREAD is None:
            _THREAD = EncoderThread()
    return _THREAD


def on_encoder_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, run on the process's encoder thread."""
    return encoder_thread().run(fn, *args, **kwargs)
