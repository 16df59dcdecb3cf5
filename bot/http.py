"""HTTP mode: Bolt behind waitress, a production WSGI server, on ``/slack/events``.

Bolt's own ``app.start()`` server is for development and drops connections under
concurrent load; waitress queues them across a fixed pool of threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
_REFUSED = b'{"error":"invalid request"}'


def _readable_timestamp(environ: dict[str, Any]) -> bool:
    """Whether ``X-Slack-Request-Timestamp`` is absent or an integer, as Bolt can read it.

    slack_sdk's ``SignatureVerifier`` calls ``int()`` on it unguarded: a forged header such
    as ``yesterday`` raised ``ValueError`` inside Bolt, which answered 500 and logged a
    failure, where any other unverifiable request gets 401. (Absent, Bolt reads it as 0.)
    """
    raw = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
    if raw is None:
        return True
    try:
        int(raw)
    except ValueError:  # also past int()'s 4,300-digit limit
        return False
    return True


class HttpServer:
    """Serves the Slack endpoint and ``/healthz`` until stopped."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000, threads: int = 8):
        slack = SlackRequestHandler(app, path=EVENTS_PATH)

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            if not _readable_timestamp(environ):
                log.info("refused a Slack request: its timestamp is not a number")
                start_response("401 Unauthorized", [("Content-Type", "application/json")])
                return [_REFUSED]
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

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self.port}{EVENTS_PATH}"

    def serve_forever(self) -> None:
        log.info("serving Slack requests at %s", self.url)
        self._server.run()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

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
