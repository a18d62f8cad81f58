"""A replica that stops closes its idle keep-alive connections at once (uvicorn's graceful shutdown). The
gateway and the services' peer clients must not send a request on such a connection just because their
event loop has not read the close yet: a POST sent into it gets no answer and may not be repeated (it
was a 503 "auth service unavailable" for a 003 registration while an auth replica restarted)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.proxy import Upstreams
from shared.http import AiohttpTransport

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class KeepAliveServer:
    """Answers each request with 200 and keeps the connection open, until `close_idle()` closes every
    connection it holds, as a stopping uvicorn does (it goes on accepting new ones here)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections.append(connection)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        try:
            while chunk := connection.recv(65536):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = next(
                        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                        0,
                    )  # fmt: skip
                    while len(buffer) < length:
                        if not (more := connection.recv(65536)):
                            return  # the client hung up inside a body
                        buffer += more
                    buffer = buffer[length:]
                    connection.sendall(ANSWER)
        except OSError:
            pass

    def close_idle(self) -> None:
        with self._lock:
            for connection in self.connections:
                connection.shutdown(socket.SHUT_RDWR)  # the FIN now (close() alone waits for the recv() in _serve)
                connection.close()
            self.connections = []

    def stop(self) -> None:
        self.listener.close()
        self.close_idle()


@pytest.fixture
def server() -> Iterator[KeepAliveServer]:
    running = KeepAliveServer()
    yield running
    running.stop()


def _closed_while_the_loop_looked_away(server: KeepAliveServer) -> None:
    """The service closes its idle connections; the caller's event loop is busy meanwhile (this blocks it),
    so the close is in the socket but not yet read when the next request is made."""
    server.close_idle()
    time.sleep(0.2)


async def test_the_gateway_does_not_send_on_a_connection_the_service_closed(server: KeepAliveServer):
    upstreams = Upstreams({"auth": [server.url]}, timeout=5, connect_timeout=2)
    try:
        url = upstreams.url(server.url, "/user/register")
        async with upstreams.session.post(url, data=b"{}") as response:
            assert response.status == 200
        _closed_while_the_loop_looked_away(server)
        async with upstreams.session.post(url, data=b"{}") as response:
            assert (response.status, await response.read()) == (200, b"ok")
        assert server.accepted == 2  # a new connection for the second request
    finally:
        await upstreams.aclose()


async def test_a_peer_client_does_not_send_on_a_connection_the_service_closed(server: KeepAliveServer):
    async with httpx.AsyncClient(transport=AiohttpTransport(), base_url=server.url) as client:
        assert (await client.post("/internal/escrow/hold", json={})).status_code == 200
        _closed_while_the_loop_looked_away(server)
        response = await client.post("/internal/escrow/hold", json={})
        assert (response.status_code, response.content) == (200, b"ok")
        assert server.accepted == 2
