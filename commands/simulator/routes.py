"""HTTP routing: which request goes to which engine call, and the JSON in and out.

Three kinds of route: ``api`` (bearer token, counted against the non-run budget),
``run`` (bearer token, counted against the run rate instead) and ``open`` (the sign-in
authority and the result blobs, which take no token).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from commands.simulator.clock import iso
from commands.simulator.errors import OAuthError, SimError, api_error_body
from commands.simulator.query import Page, next_link
from commands.simulator.state import SimState

__all__ = ["JSON", "Request", "Response", "Router", "json_response"]

logger = logging.getLogger(__name__)

JSON = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # keys in lower case
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)


def json_response(status: int, document: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(document).encode(), JSON, headers or {})


def _blob_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(status, body.encode(), "application/xml")


Handler = Callable[[Request, re.Match[str]], Response]


class Router:
    """Dispatch requests to the engine; errors become Microsoft-shaped bodies."""

    def __init__(self, state: SimState, base_url: str) -> None:
        self.state = state
        self.base_url = base_url
        tenant = re.escape(state.scenario.tenant_id)
        api: list[tuple[str, str, str, Handler]] = [
            ("POST", r"/([^/]+)/oauth2/v2\.0/token", "open", self._token),
            ("GET", r"/([^/]+)/v2\.0/\.well-known/openid-configuration", "open", self._discovery),
            ("GET", r"/blob/([0-9a-f]+)", "open", self._blob),
            ("GET", r"/api/machines", "api", self._machines),
            ("GET", r"/api/machines/findbytag", "api", self._find_by_tag),
            ("GET", r"/api/machines/([^/]+)", "api", self._machine),
            ("POST", r"/api/machines/([^/]+)/runliveresponse", "run", self._run),
            ("GET", r"/api/machineactions", "api", self._actions),
            ("GET", r"/api/machineactions/([^/]+)", "api", self._action),
            ("POST", r"/api/machineactions/([^/]+)/cancel", "api", self._cancel),
            (
                "GET",
                r"/api/machineactions/([^/]+)/GetLiveResponseResultDownloadLink\(index=(\d+)\)",
                "api",
                self._link,
            ),
            ("GET", r"/api/libraryfiles", "api", self._library),
        ]
        self._tenant = re.compile(tenant, re.IGNORECASE)
        self._routes = [
            (method, re.compile(pattern + "/?", re.IGNORECASE), kind, handler)
            for method, pattern, kind, handler in api
        ]

    def dispatch(self, request: Request) -> Response:
        """The answer to ``request``; never raises for a bad request."""
        try:
            return self._dispatch(request)
        except SimError as problem:
            headers = {"Retry-After": problem.retry_after} if problem.retry_after else {}
            return json_response(problem.status, problem.body(), headers)
        except OAuthError as problem:
            return json_response(
                problem.status, problem.body(iso(self.state.clock.now())[:19] + "Z")
            )
        except Exception:
            logger.exception("simulator failed on %s %s", request.method, request.path)
            return json_response(500, api_error_body("InternalServerError", "Simulator failure."))

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, kind, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None or method != request.method:
                continue
            if kind != "open":
                self.state.authorize(request.headers.get("authorization"))
            if kind == "api":
                self.state.charge_api_call()
            return handler(request, match)
        raise SimError(404, "NotFound", f"No resource at {request.method} {request.path}.")

    # --- sign-in authority ------------------------------------------------------------------

    def _check_tenant(self, tenant: str) -> None:
        if not self._tenant.fullmatch(tenant):
            raise OAuthError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")

    def _token(self, request: Request, match: re.Match[str]) -> Response:
        self._check_tenant(match[1])
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        token_url = f"{self.base_url}/{match[1]}/oauth2/v2.0/token"
        return json_response(200, self.state.issue_token(form, token_url))

    def _discovery(self, request: Request, match: re.Match[str]) -> Response:
        self._check_tenant(match[1])
        root = f"{self.base_url}/{match[1]}"
        return json_response(
            200,
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "issuer": f"{root}/v2.0",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "token id_token"],
                "tenant_region_scope": "NA",
            },
        )

    # --- Defender API -----------------------------------------------------------------------

    def _body(self, request: Request) -> Any:
        if not request.body.strip():
            return None
        try:
            return json.loads(request.body)
        except ValueError:
            raise SimError(
                400, "InvalidRequestBody", "The request body is not valid JSON."
            ) from None

    def _collection(self, request: Request, page: Page, entity: str) -> Response:
        document: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/api/$metadata#{entity}",
            "value": page.items,
        }
        if page.next_query is not None:
            document["@odata.nextLink"] = next_link(self.base_url, request.path, page.next_query)
        return json_response(200, document)

    def _machines(self, request: Request, match: re.Match[str]) -> Response:
        return self._collection(request, self.state.list_machines(request.query), "Machines")

    def _find_by_tag(self, request: Request, match: re.Match[str]) -> Response:
        tag = request.query.get("tag") or ""
        if not tag:
            raise SimError(400, "InvalidInput", "The tag parameter is required.")
        starts = (request.query.get("useStartsWithFilter") or "").lower() == "true"
        document = {
            "@odata.context": f"{self.base_url}/api/$metadata#Machines",
            "value": self.state.machines_by_tag(tag, starts),
        }
        return json_response(200, document)

    def _machine(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, self._entity("Machines", self.state.get_machine(match[1])))

    def _entity(self, entity: str, document: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": f"{self.base_url}/api/$metadata#{entity}/$entity", **document}

    def _run(self, request: Request, match: re.Match[str]) -> Response:
        action = self.state.run(match[1], self._body(request))
        return json_response(201, self._entity("MachineActions", action))

    def _actions(self, request: Request, match: re.Match[str]) -> Response:
        return self._collection(request, self.state.list_actions(request.query), "MachineActions")

    def _action(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, self._entity("MachineActions", self.state.get_action(match[1])))

    def _cancel(self, request: Request, match: re.Match[str]) -> Response:
        action = self.state.cancel(match[1], self._body(request))
        return json_response(200, self._entity("MachineActions", action))

    def _link(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, self.state.download_link(match[1], int(match[2]), self.base_url))

    def _library(self, request: Request, match: re.Match[str]) -> Response:
        document = {
            "@odata.context": f"{self.base_url}/api/$metadata#LibraryFiles",
            "value": self.state.list_library(),
        }
        return json_response(200, document)

    # --- result blobs (Azure storage, no bearer token) ----------------------------------------

    def _blob(self, request: Request, match: re.Match[str]) -> Response:
        if "authorization" in request.headers:
            return _blob_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request: a SAS request must not carry an"
                " Authorization header.",
            )
        blob = self.state.blob(match[1], request.query.get("sig"))
        if blob is None:
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if self.state.clock.now() >= blob.expires:
            return _blob_error(
                403, "AuthenticationFailed", "Signed expiry time has passed: the link expired."
            )
        headers = {"x-ms-blob-type": "BlockBlob"}
        return Response(200, blob.content, "application/octet-stream", headers)
