"""Defender API tokens from MSAL, behind an ``httpx.Auth``.

The application builds ONE ``MsalTokenProvider`` per process (``DefenderClient`` builds one
when it is given none) and shares it: MSAL's in-memory cache then serves every call until
the token is about to expire. ``DefenderAuth`` sets the bearer token and, when Defender
still answers 401, drops the cached token, gets a new one and retries once; a 401 means the
request was not executed, so repeating it is safe even for a POST.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any, Protocol

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from commands.config import DefenderSettings
from commands.errors import AuthenticationError, ConfigurationError, TransportError

__all__ = [
    "DefenderAuth",
    "MsalTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
    "load_certificate_credential",
]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_SETTING = "DEFENDER_CLIENT_CERTIFICATE"


class TokenProvider(Protocol):
    """Something that hands out Defender access tokens."""

    def token(self, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` skips any cached one."""
        ...


class StaticTokenProvider:
    """A fixed token, for tests and tools; ``force_refresh`` cannot renew it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, force_refresh: bool = False) -> str:
        return self._token


def _public_bytes(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _private_key(blocks: list[tuple[str, bytes]]) -> tuple[PrivateKeyTypes, bytes]:
    if any(kind == "ENCRYPTED PRIVATE KEY" for kind, _ in blocks):
        raise ConfigurationError(
            f"{_SETTING}: the private key is encrypted; give an unencrypted PEM"
        )
    pem = next((block for kind, block in blocks if kind.endswith("PRIVATE KEY")), None)
    if pem is None:
        raise ConfigurationError(f"{_SETTING}: the PEM file holds no private key")
    try:
        return serialization.load_pem_private_key(pem, password=None), pem
    except (ValueError, TypeError):
        raise ConfigurationError(f"{_SETTING}: the private key cannot be read") from None


def load_certificate_credential(path: Path) -> dict[str, str]:
    """MSAL's certificate credential from a PEM holding the private key and its certificate."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{_SETTING}: cannot read {path}: {exc.strerror}") from None
    blocks = [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    key, key_pem = _private_key(blocks)
    wanted = _public_bytes(key.public_key())
    for kind, block in blocks:
        if kind != "CERTIFICATE":
            continue
        try:
            cert = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        if _public_bytes(cert.public_key()) == wanted:
            return {
                "private_key": key_pem.decode(),
                "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
            }
    raise ConfigurationError(f"{_SETTING}: no certificate in the PEM file matches its private key")


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


class MsalTokenProvider:
    """App-only tokens for the Defender API from one ``msal.ConfidentialClientApplication``.

    The application is built on first use (that is when MSAL reads the authority's
    metadata) and reused; calls are serialised by a lock, so a token is fetched once
    however many threads ask. Build a new provider to forget MSAL's remembered failures.
    """

    def __init__(self, settings: DefenderSettings, http_client: Any = None) -> None:
        settings.require_credentials()
        self._settings = settings
        self._http_client = http_client  # anything requests-like; None: MSAL's own session
        self._lock = threading.Lock()
        self._cache = msal.TokenCache()
        self._app: Any = None

    @property
    def _secret(self) -> str | None:
        secret = self._settings.client_secret
        return secret.get_secret_value() if secret is not None else None

    def _credential(self) -> Any:
        if self._settings.client_certificate is not None:
            return load_certificate_credential(self._settings.client_certificate)
        return self._secret

    def _application(self) -> Any:
        if self._app is None:
            settings = self._settings
            try:
                self._app = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=self._credential(),
                    authority=settings.authority,
                    token_cache=self._cache,
                    http_client=self._http_client,
                    timeout=settings.timeout_seconds,
                    instance_discovery=settings.instance_discovery,
                )
            except ValueError as exc:  # MSAL's word for an authority that answered no
                raise AuthenticationError(
                    "invalid_authority", _scrub(str(exc), self._secret)
                ) from None
            except OSError as exc:  # requests' errors are OSErrors
                raise TransportError(
                    f"sign-in authority {settings.authority_host} unreachable: {type(exc).__name__}"
                ) from None
        return self._app

    def _forget_tokens(self) -> None:
        for item in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._cache.remove_at(item)

    def token(self, force_refresh: bool = False) -> str:
        """A token from MSAL's cache or a new one; ``force_refresh`` drops the cached one first."""
        with self._lock:
            app = self._application()
            if force_refresh:
                self._forget_tokens()
            try:
                result = app.acquire_token_for_client(scopes=[self._settings.scope])
            except OSError as exc:
                raise TransportError(
                    f"sign-in authority {self._settings.authority_host} unreachable:"
                    f" {type(exc).__name__}"
                ) from None
            except msal.exceptions.MsalServiceError as exc:
                # What MSAL raises for a 5xx from the authority: down for now, not a refusal.
                raise TransportError(
                    f"sign-in authority {self._settings.authority_host} failed: {exc}"
                ) from None
        if not isinstance(result, dict) or "access_token" not in result:
            result = result if isinstance(result, dict) else {}
            raise AuthenticationError(
                str(result.get("error", "no_token")),
                _scrub(str(result.get("error_description", "")), self._secret),
            )
        return str(result["access_token"])


class DefenderAuth(httpx.Auth):
    """Bearer token on every request; after a 401, one retry with a freshly issued token."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._provider.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._provider.token(force_refresh=True)}"
            yield request
