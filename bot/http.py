"""HTTP mode: Bolt behind waitress, a production WSGI server, on ``/slack/events``.

Bolt's own ``app.start()`` server is for development and drops connections under
concurrent load; waitress queues them across a fixed pool of threads.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

from bot.health import Health, ops_response
from bot.inbound import problem
from bot.metrics import Metrics

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
_HEALTHZ = ("200 OK", [("Content-Type", "text/plain")], b"ok\n")


class HttpServer:
    """Serves the Slack endpoint, ``/healthz``, and with ``ops`` ``/readyz`` and ``/metrics``,
    until stopped; without ``app``, only those (Socket Mode's health port)."""

    def __init__(
        self,
        app: App | None,
        host: str = "127.0.0.1",
        port: int = 3000,
        threads: int = 8,
        ops: tuple[Health, Metrics] | None = None,
    ):
        slack = SlackRequestHandler(app, path=EVENTS_PATH) if app is not None else None
        # Bolt keeps the secret it verifies with (empty when verification is off); checking
        # with the same one first lets ``bot.inbound`` refuse unsigned bodies before parsing.
        secret: str | None = getattr(app, "_signing_secret", None) or None

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = str(environ.get("PATH_INFO"))
            answer = (
                ops_response(path, *ops)
                if ops is not None
                else (_HEALTHZ if path == "/healthz" else None)
            )
            if answer is not None:
                status, fields, content = answer
                start_response(status, fields)
                return [content]
            if slack is None:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found\n"]
            if environ.get("PATH_INFO") != EVENTS_PATH or environ.get("REQUEST_METHOD") != "POST":
                return slack(environ, start_response)  # Bolt's own answer (404, 405)
            with self._busy:
                if self._draining:  # a kept-alive connection, after SIGTERM: Slack retries
                    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                    return [b"stopping\n"]
                self._in_hand += 1
            try:
                return events(environ, start_response)
            finally:
                with self._busy:
                    self._in_hand -= 1
                    self._busy.notify_all()

        def events(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            assert slack is not None
            body = _read_body(environ)
            headers = {
                k[5:].lower().replace("_", "-"): str(v)
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            refusal = problem(body, headers, environ.get("CONTENT_TYPE"), secret)
            if refusal is not None:
                log.info("refused a request to %s: %s", EVENTS_PATH, refusal.reason)
                status = "401 Unauthorized" if refusal.status == 401 else "400 Bad Request"
                start_response(status, [("Content-Type", "application/json")])
                return [b'{"error":"invalid request"}']
            environ["wsgi.input"] = io.BytesIO(body)  # read once here; Bolt reads it again
            return slack(environ, start_response)

        self._server = create_server(
            wsgi,
            host=host,
            port=port,
            threads=threads,
            ident="lrbot",
            clear_untrusted_proxy_headers=True,
        )
        self._thread: threading.Thread | None = None
        self._slack = slack is not None
        self._busy = threading.Condition()  # guards the two below
        self._in_hand = 0  # Slack requests being handled (until their answer is made)
        self._draining = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"{self.base_url}{EVENTS_PATH}"

    @property
    def base_url(self) -> str:
        return f"http://{self._server.effective_host}:{self.port}"

    def serve_forever(self) -> None:
        log.info("serving %s at %s", "Slack requests" if self._slack else "health", self.base_url)
        self._server.run()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def drain(self, timeout: float) -> bool:
        """Take no new Slack requests (the port closes; a kept-alive connection gets 503)
        and wait, at most ``timeout`` s, for those in hand to be answered; True if they were.
        The port closes for everything: an orchestrator's probes see the bot going."""
        with self._busy:
            self._draining = True
        if self._thread is not None and self._thread.is_alive():
            self._server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(self._server))
        with self._busy:
            return self._busy.wait_for(lambda: self._in_hand == 0, max(timeout, 0.0))

    def stop(self) -> None:
        server = self._server
        if self._thread is None or not self._thread.is_alive():
            server.close()
            return
        # Close the listener and every open (keep-alive) connection in the loop's own thread:
        # closing the listener alone leaves the loop serving those connections until they
        # time out, so the join below would wait its full 5 s.
        server.trigger.pull_trigger(lambda: _close_all_but_trigger(server))
        self._thread.join(5)
        # Workers finishing a request pull the trigger too: it stays open until they are gone.
        server.task_dispatcher.shutdown()
        server.close()


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    return stream.read(length) if stream is not None and length > 0 else b""


def _close_all_but_trigger(server: Any) -> None:
    """Empty the loop's map (so the loop ends), leaving the trigger's pipe open.

    The loop runs queued thunks whenever it wakes, possibly before ``pull_trigger`` has
    written its byte: had the thunk closed the pipe, that write would fail with EBADF, or
    land in whatever file had just reused the descriptor. (The server's own ``close``
    closes the trigger, so only its listening socket is closed here.)
    """
    server.trigger.del_channel()
    wasyncore.dispatcher.close(server)
    wasyncore.close_all(server._map)
