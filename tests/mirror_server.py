"""A weights mirror for tests: a folder served over HTTP on 127.0.0.1 in a thread, which
counts the requests per path and can misbehave (a truncated body, wrong bytes, slow)."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ServerState:
    """What the test server does (``mode``) and what it was asked (``requests`` per path)."""

    def __init__(self) -> None:
        self.mode = "normal"  # "normal", "truncate", "wrong" or "slow"
        self.requests: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.barrier: threading.Barrier | None = None  # "slow": wait for this many requests
        self.barrier_broken = False
        self.in_flight = 0
        self.max_in_flight = 0

    def total(self) -> int:
        with self.lock:
            return sum(self.requests.values())

    def count(self, path: str) -> int:
        with self.lock:
            return self.requests["/" + path]


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the mirror folder; counts requests; misbehaves as ``state.mode`` says."""

    state: ServerState

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        state = self.state
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with state.lock:
            state.requests[path] += 1
            mode = state.mode
        local = Path(self.translate_path(self.path))
        if mode == "normal" or not local.is_file():
            return super().do_GET()
        data = local.read_bytes()
        if mode == "wrong":  # same size, other bytes
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.close_connection = True
        if mode == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return None
        if mode == "slow":
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.barrier is not None:
                    try:
                        state.barrier.wait()
                    except threading.BrokenBarrierError:
                        state.barrier_broken = True
                step = 1 << 18
                for start in range(0, len(data), step):
                    self.wfile.write(data[start:start + step])
                    self.wfile.flush()
                    time.sleep(0.02)
            finally:
                with state.lock:
                    state.in_flight -= 1
            return None
        self.wfile.write(data)
        return None


class Server:
    """A running test server: its base URL and its state."""

    def __init__(self, url: str, state: ServerState) -> None:
        self.url = url
        self.state = state


@contextlib.contextmanager
def serve_folder(folder: str | Path) -> Iterator[Server]:
    """Serve ``folder`` at ``http://127.0.0.1:<free port>`` until the block ends."""
    state = ServerState()
    handler = type("Handler", (MirrorHandler,), {"state": state})

    def make(*args, **kwargs):
        return handler(*args, directory=str(folder), **kwargs)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
