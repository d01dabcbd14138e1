"""Faults inflicted from outside the service: a TCP proxy in front of PostgreSQL that can stop
forwarding (the peer keeps accepting bytes and never answers, like a frozen server or a
blackholed link behind a middlebox)."""

from __future__ import annotations

import socket
import threading
import time


class StallingProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`stall` holds every byte in both
    directions (connections stay open), :meth:`resume` lets them flow again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._stalled = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self._stalled.is_set():
                    time.sleep(0.02)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def close(self) -> None:
        self._stalled.clear()
        self._listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
