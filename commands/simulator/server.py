"""The simulator as a real HTTP(S) server on loopback, with fault injection and a request log.

with SimulatorServer(scenario, clock=ManualClock()) as sim:
    sim.base_url            # API root (paths start with /api)
    sim.authority_host      # sign-in authority: {authority_host}/{tenant}/oauth2/v2.0/token
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import shutil
import socket
import ssl
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from commands.simulator.clock import Clock, ScaledClock
from commands.simulator.errors import api_error_body
from commands.simulator.faults import Fault, FaultBook, FaultHandle
from commands.simulator.routes import Request, Response, Router, json_response
from commands.simulator.scenario import Scenario
from commands.simulator.state import SimState
from commands.simulator.tls import write_self_signed

__all__ = ["RecordedRequest", "SimulatorServer"]

logger = logging.getLogger(__name__)
_SIGNATURE = re.compile(r"([?&]sig=)[^&\s]*")

_SECRET_FIELDS = frozenset({"client_secret", "client_assertion"})
_REDACTED = "[redacted]"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; the Authorization value and form secrets are redacted.

    ``at`` is the simulator's clock when it arrived; ``status`` the answer's, once it is
    being sent (None before, and for ever for a dropped answer or one held in vain).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # keys in lower case
    body: Any  # parsed JSON, a form as a dict, or None
    at: float = 0.0
    status: int | None = None


def _record(request: Request, at: float) -> RecordedRequest:
    headers = dict(request.headers)
    if "authorization" in headers:
        scheme = headers["authorization"].partition(" ")[0]
        headers["authorization"] = f"{scheme} {_REDACTED}"
    body: Any = None
    if request.body:
        if "x-www-form-urlencoded" in headers.get("content-type", ""):
            form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
            body = {k: _REDACTED if k in _SECRET_FIELDS else v for k, v in form.items()}
        else:
            with contextlib.suppress(ValueError):
                body = json.loads(request.body)
    return RecordedRequest(request.method, request.path, dict(request.query), headers, body, at)


def _fault_response(fault: Fault, path: str) -> Response:
    headers = {"Retry-After": h} if (h := fault.retry_after_header) else {}
    if fault.body is not None:
        return Response(fault.status, fault.body, fault.content_type, headers)
    if path.startswith("/api"):
        return json_response(
            fault.status, api_error_body(fault.error_code, fault.error_message), headers
        )
    body = {"error": "temporarily_unavailable", "error_description": fault.error_message}
    return json_response(fault.status, body, headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # The request line of a blob GET holds the link's signature: in the demo the
        # simulator logs into the bot's own log, where a usable result link must never be.
        shown = tuple(_SIGNATURE.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in args)
        logger.debug("%s " + format, self.address_string(), *shown)

    def _read(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        target = urlsplit(self.path)
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(self.command, unquote(target.path), query, headers, body)

    def _handle(self) -> None:
        owner = self.server.owner
        request = self._read()
        recorded = owner._log(request)
        handle = owner._faults.take(request.method, request.path)
        if handle is not None and not (handle.fault.drop or handle.holds):
            handle.arrived.set()
            self._send(_fault_response(handle.fault, request.path), recorded)
            return
        response = owner._router.dispatch(request)
        if handle is not None:
            handle.arrived.set()
            # Applied: a drop never answers, a hold answers once released (if still heard).
            heard = self._held(handle) if handle.holds else True
            if handle.fault.drop or not heard:
                self.close_connection = True
                return
        self._send(response, recorded)

    def _held(self, handle: FaultHandle) -> bool:
        """Wait while ``handle`` holds the answer: False if the client hung up meanwhile."""
        while not handle.released.is_set():
            if self.server.owner._stopped:
                return False
            # A client waiting for its answer sends nothing: readable means it went away.
            if select.select([self.connection], [], [], 0.05)[0]:
                return False
        return True

    def _send(self, response: Response, recorded: RecordedRequest) -> None:
        self.server.owner._answered(recorded, response.status)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: SimulatorServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SimulatorServer:
    """Defender's live response API and its sign-in authority, served on loopback.

    The server starts listening when constructed; ``stop()`` (or leaving the ``with``
    block) closes it and every open connection.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Clock | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock if clock is not None else ScaledClock(1.0)
        self.state = SimState(scenario, self.clock)
        self._faults = FaultBook()
        self._requests: deque[RecordedRequest] = deque(maxlen=100_000)
        self._requests_lock = threading.Lock()
        self._tempdir: Path | None = None
        self.ca_pem_path: str | None = None
        self._http = _HTTPServer((host, port), self)
        if tls:
            self._wrap_tls(host)
        bound_port = self._http.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
        self.authority_host = self.base_url
        self.token_url = f"{self.authority_host}/{scenario.tenant_id}/oauth2/v2.0/token"
        self._router = Router(self.state, self.base_url)
        self._stopped = False
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="defender-simulator",
            daemon=True,
        )
        self._thread.start()

    def _wrap_tls(self, host: str) -> None:
        self._tempdir = Path(tempfile.mkdtemp(prefix="lrbot-sim-tls-"))
        cert, key = write_self_signed(self._tempdir, [host])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # Handshakes happen on first read, in the connection's own thread.
        self._http.socket = context.wrap_socket(
            self._http.socket, server_side=True, do_handshake_on_connect=False
        )
        self.ca_pem_path = str(cert)

    def _log(self, request: Request) -> RecordedRequest:
        recorded = _record(request, self.clock.now())
        with self._requests_lock:
            self._requests.append(recorded)
        return recorded

    def _answered(self, recorded: RecordedRequest, status: int) -> None:
        """Note the answer's status on the recorded request (kept in arrival order)."""
        with self._requests_lock:
            # The request is near the end: only those that arrived while it ran follow it.
            for index in range(len(self._requests) - 1, -1, -1):
                if self._requests[index] is recorded:
                    self._requests[index] = replace(recorded, status=status)
                    return

    # --- test controls ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def fault(self, fault: Fault) -> FaultHandle:
        """Answer (drop, or hold) the next ``fault.times`` matching requests.

        The handle tells when a request met the fault (``arrived``) and releases a hold.
        """
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_online(self, machine_id: str, online: bool = True) -> None:
        self.state.set_online(machine_id, online)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on."""
        self.state.expire_tokens()

    def delete_library_file(self, name: str) -> bool:
        """Remove ``name`` from the library, as someone deleting it in the portal would."""
        return self.state.delete_library_file(name)

    def replace_library_file(
        self, name: str, content: bytes, description: str | None = None
    ) -> None:
        self.state.replace_library_file(name, content, description)

    def actions(self) -> list[dict[str, Any]]:
        """A snapshot of every action as Defender would return it now."""
        return self.state.actions()

    # --- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving, close open connections, remove the certificate files."""
        if self._stopped:
            return
        self._stopped = True
        self._http.shutdown()
        self._http.server_close()
        self._http.close_connections()
        self._thread.join(timeout=5)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
