"""A TCP proxy a test can cut: the network between one process and PostgreSQL or Redis fails for real.

``FaultProxy(port)`` listens on a free local port and forwards every connection to
``127.0.0.1:port``. ``cut()`` resets every open connection and refuses new ones, as a
dependency that went down or a network that broke; ``restore()`` lets them through again.
Only the processes pointed at the proxy see the fault: the shared server goes on serving
everyone else.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class FaultProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.open = True
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.open:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                if not self.open:  # cut while this one was connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self.connections.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self.connections.discard(source)
                self.connections.discard(sink)

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        self.open = False
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for sock in connections:
            _reset(sock)

    def restore(self) -> None:
        self.open = True

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a server that died does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
