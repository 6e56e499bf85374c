"""A TCP proxy with a bandwidth limit: puts a slow link in front of a server we did not write (olah).

    with ThrottledProxy("127.0.0.1", 8080, bytes_per_second=1e6) as proxy:
        ... proxy.endpoint ...   # http://127.0.0.1:<port>, forwarding to 127.0.0.1:8080

Bytes from the server to the client pass through one token bucket shared by every connection (a
slow link, not a slow connection); bytes from the client pass unthrottled.
"""

from __future__ import annotations

import socket
import threading
import time


class _Bucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next = 0.0
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        """Wait as long as `n` bytes take at the rate, after those already sent (no burst after idling)."""
        with self.lock:
            now = time.monotonic()
            self.next = max(now, self.next) + n / self.rate
            until = self.next
        time.sleep(until - now)


class ThrottledProxy:
    def __init__(self, host: str, port: int, bytes_per_second: float, chunk: int = 16 * 1024) -> None:
        self.target = (host, port)
        self.bucket = _Bucket(bytes_per_second)
        self.chunk = chunk
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pump(self, src: socket.socket, dst: socket.socket, throttled: bool) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(self.chunk)
                if not data:
                    break
                if throttled:
                    self.bucket.take(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def __enter__(self) -> "ThrottledProxy":
        threading.Thread(target=self._serve, name=f"proxy-{self.port}", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
