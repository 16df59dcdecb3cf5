"""The sign-in authority: client credentials (secret or signed assertion) and bearer tokens.

Tokens are shaped like Entra's, ``header.payload.signature`` (base64url JSON, unsigned:
the signature part is random and carries ``TOKEN_MARKER``), with the claims a client may
read (``roles``, ``tid``, ``appid``, ``aud``, ``exp``); they expire after
``token_lifetime_seconds`` of clock time. Client assertions are checked with
``cryptography``: RS256 or PS256 signature by the configured certificate's key, then
``iss``/``sub``/``aud``/``exp`` loosely (wall-clock time, five minutes of leeway, since
MSAL signs with the real time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from commands.simulator.errors import OAuthError
from commands.simulator.scenario import Scenario

__all__ = [
    "TOKEN_MARKER",
    "TokenStore",
    "check_client",
    "check_consent",
    "jwt_shaped",
    "token_claims",
    "verify_assertion",
]

# Every issued token holds this: tests look for it in everything the bot writes down.
TOKEN_MARKER = "LRBOTSIMTOKEN"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_LEEWAY = 300.0


class TokenStore:
    """Issued bearer tokens and when each expires (clock time). Not locked: the engine is."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def issue(self, now: float, lifetime: float, claims: Mapping[str, Any] | None = None) -> str:
        token = jwt_shaped(dict(claims or {}))
        self._expiry[token] = now + lifetime
        return token

    def valid(self, token: str, now: float) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and now < expiry

    def expire_all(self, now: float) -> None:
        for token in self._expiry:
            self._expiry[token] = min(self._expiry[token], now)


def _b64url_json(value: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def jwt_shaped(claims: Mapping[str, Any]) -> str:
    """An unsigned token shaped like a JWT; the signature part is random, after the marker."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "lrbot-simulator"}
    signature = f"{TOKEN_MARKER}{secrets.token_urlsafe(32)}"
    return f"{_b64url_json(header)}.{_b64url_json(claims)}.{signature}"


def token_claims(scenario: Scenario, scope: str, wall: float, lifetime: float) -> dict[str, Any]:
    """What an app-only access token says: tenant, app, audience, expiry and roles."""
    audience = next((s for s in scope.split() if s.endswith("/.default")), scope)
    return {
        "aud": audience.removesuffix("/.default"),
        "iss": f"https://sts.windows.net/{scenario.tenant_id}/",
        "iat": int(wall),
        "nbf": int(wall),
        "exp": int(wall + lifetime),
        "appid": scenario.client_id,
        "tid": scenario.tenant_id,
        "roles": list(scenario.token_roles),
    }


def _missing(name: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def check_client(form: Mapping[str, str], scenario: Scenario, token_url: str, wall: float) -> None:
    """Raise ``OAuthError`` unless ``form`` is a valid client credentials request."""
    for name in ("grant_type", "client_id", "scope"):
        if not form.get(name):
            raise _missing(name)
    if form["grant_type"] != "client_credentials":
        raise OAuthError(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    if form["client_id"] != scenario.client_id:
        raise OAuthError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{form['client_id']}' was not found in the directory.",
        )
    if not any(scope.endswith("/.default") for scope in form["scope"].split()):
        raise OAuthError(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a"
            " scope value with /.default suffixed to the resource identifier.",
        )
    if "client_secret" in form:
        _check_secret(form["client_secret"], scenario)
    elif "client_assertion" in form:
        _check_assertion(form, scenario, token_url, wall)
    else:
        raise OAuthError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or"
            " 'client_secret'.",
        )


def _check_secret(secret: str, scenario: Scenario) -> None:
    expected = scenario.client_secret
    if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise OAuthError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the"
            " client secret value, not the client secret ID.",
        )


def check_consent(scenario: Scenario, scope: str) -> None:
    """Refuse a token when no admin has consented to the app's permissions (AADSTS65001)."""
    if not scenario.admin_consent:
        raise OAuthError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID"
            f" '{scenario.client_id}'. Send an interactive authorization request for this user"
            f" and resource ({scope}).",
        )


def _check_assertion(
    form: Mapping[str, str], scenario: Scenario, token_url: str, wall: float
) -> None:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
    if scenario.client_certificate_pem is None:
        raise OAuthError(
            401, "invalid_client", 700027, "No certificate is registered for the application."
        )
    problem = verify_assertion(
        form["client_assertion"],
        scenario.client_certificate_pem,
        scenario.client_id,
        token_url,
        wall,
    )
    if problem:
        raise OAuthError(401, "invalid_client", 700027, f"Client assertion failed: {problem}.")


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signature_ok(header: dict[str, Any], signed: bytes, signature: bytes, cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "the registered certificate has no RSA key"
    thumbprints = {
        "x5t": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode(),  # noqa: S303
        "x5t#S256": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256()))
        .rstrip(b"=")
        .decode(),
    }
    for name, expected in thumbprints.items():
        # Padding varies between signers (MSAL keeps it): compare without it.
        if name in header and str(header[name]).rstrip("=") != expected:
            return f"{name} does not match the registered certificate"
    alg = header.get("alg")
    if alg == "RS256":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        return f"unsupported algorithm {alg!r}"
    try:
        key.verify(signature, signed, pad, hashes.SHA256())
    except InvalidSignature:
        return "the signature does not verify"
    return ""


def _claims_ok(claims: dict[str, Any], client_id: str, token_url: str, wall: float) -> str:
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return "iss and sub must be the client id"
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    tenant_url = token_url.rsplit("/oauth2/", 1)[0]
    if not any(isinstance(a, str) and a.startswith(tenant_url) for a in audiences):
        return f"aud must be the token endpoint {token_url}"
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < wall - _LEEWAY:
        return "the assertion has expired"
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > wall + _LEEWAY:
        return "the assertion is not valid yet"
    return ""


def verify_assertion(
    assertion: str, cert_pem: str, client_id: str, token_url: str, wall: float
) -> str:
    """Why the JWT client assertion is refused, or an empty string when it is accepted."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return "not a JWT"
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, binascii.Error):
        return "not a JWT"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "not a JWT"
    signed = f"{parts[0]}.{parts[1]}".encode()
    return _signature_ok(header, signed, signature, cert_pem) or _claims_ok(
        claims, client_id, token_url, wall
    )
