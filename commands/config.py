"""Settings for talking to Defender: which cloud, which app, which credential.

Everything comes from ``DEFENDER_*`` environment variables (or a ``.env`` file).
``DEFENDER_CLOUD`` presets the API URL, the sign-in authority host and the token scope;
each can be overridden on its own. TLS trust comes from the standard environment only
(``REQUESTS_CA_BUNDLE`` for MSAL, ``SSL_CERT_FILE`` for httpx): no CA bundle is pinned here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.errors import ConfigurationError

__all__ = [
    "CLOUDS",
    "WELL_KNOWN_AUTHORITY_HOSTS",
    "CloudPreset",
    "DefenderSettings",
    "load_defender_settings",
]

ENV_PREFIX = "DEFENDER_"


@dataclass(frozen=True)
class CloudPreset:
    """Where one Microsoft cloud serves the Defender API and issues its tokens."""

    api_url: str
    authority_host: str
    scope: str


# The GCC scope and the GCC High / DoD scope are unconfirmed by Microsoft's pages:
# DEFENDER_SCOPE overrides them (e.g. https://securitycenter.onmicrosoft.us/windowsatpservice).
CLOUDS: dict[str, CloudPreset] = {
    "commercial": CloudPreset(
        "https://api.security.microsoft.com",
        "https://login.microsoftonline.com",
        "https://api.securitycenter.microsoft.com/.default",
    ),
    "gcc": CloudPreset(
        "https://api-gcc.securitycenter.microsoft.us",
        "https://login.microsoftonline.com",
        "https://api-gcc.securitycenter.microsoft.us/.default",
    ),
    "gcc-high": CloudPreset(
        "https://api-gov.securitycenter.microsoft.us",
        "https://login.microsoftonline.us",
        "https://api-gov.securitycenter.microsoft.us/.default",
    ),
    "dod": CloudPreset(
        "https://api-gov.securitycenter.microsoft.us",
        "https://login.microsoftonline.us",
        "https://api-gov.securitycenter.microsoft.us/.default",
    ),
}

# Hosts MSAL knows without asking login.microsoftonline.com (msal.authority's list).
WELL_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


def _base_url(value: str, *, https_only: bool) -> str:
    parts = urlsplit(value if "://" in value else f"https://{value}")
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname:
        wanted = "an https URL" if https_only else "an http(s) URL"
        raise ValueError(f"{value!r} is not {wanted}")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} has a query or fragment; give the base URL only")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class DefenderSettings(BaseSettings):
    """Which Defender cloud to call, as which app, with which credential."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    cloud: str = "commercial"
    api_url: str = ""  # empty: the cloud's preset
    authority_host: str = ""  # empty: the cloud's preset
    scope: str = ""  # empty: the cloud's preset
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_certificate: Path | None = None  # PEM: private key and certificate
    timeout_seconds: float = Field(30.0, gt=0, le=600)

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud(cls, value: Any) -> Any:
        name = str(value).strip().lower()
        if name not in CLOUDS:
            raise ValueError(f"{str(value)!r} is not one of {', '.join(CLOUDS)}")
        return name

    @field_validator("tenant_id", "client_id", "client_secret", "client_certificate", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not _TENANT.fullmatch(value):
            raise ValueError("a tenant is a GUID or a domain name (letters, digits, '.', '-')")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.strip():
            return ""
        url = _base_url(value.strip(), https_only=False)
        if url.lower().endswith("/api"):
            raise ValueError(f"{url!r} ends with /api; give the host only, paths start with /api")
        return url

    @field_validator("authority_host")
    @classmethod
    def _authority_host(cls, value: str) -> str:
        if not value.strip():
            return ""
        url = _base_url(value.strip(), https_only=True)  # MSAL refuses anything but https
        if urlsplit(url).path:
            raise ValueError(f"{url!r} has a path; give the host only (the tenant is added)")
        return url

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        scope = value.strip()
        if scope and not scope.endswith("/.default"):
            scope = scope.rstrip("/") + "/.default"  # app-only tokens always ask for .default
        return scope

    @model_validator(mode="after")
    def _presets(self) -> DefenderSettings:
        preset = CLOUDS[self.cloud]
        self.api_url = self.api_url or preset.api_url
        self.authority_host = self.authority_host or preset.authority_host
        self.scope = self.scope or preset.scope
        return self

    @property
    def authority(self) -> str:
        """The sign-in authority URL for the tenant, e.g. ``https://login.microsoftonline.com/<tenant>``."""
        return f"{self.authority_host}/{self.tenant_id or 'organizations'}"

    @property
    def instance_discovery(self) -> bool:
        """Whether MSAL may ask login.microsoftonline.com about the authority: Microsoft's only."""
        return (urlsplit(self.authority_host).hostname or "") in WELL_KNOWN_AUTHORITY_HOSTS

    def require_credentials(self) -> None:
        """Raise ``ConfigurationError`` naming every credential setting that is missing or wrong."""
        missing = [
            f"{ENV_PREFIX}{name.upper()}"
            for name in ("tenant_id", "client_id")
            if getattr(self, name) is None
        ]
        if self.client_secret is None and self.client_certificate is None:
            missing.append(f"{ENV_PREFIX}CLIENT_SECRET or {ENV_PREFIX}CLIENT_CERTIFICATE")
        if missing:
            raise ConfigurationError(f"missing settings: {', '.join(missing)}")
        if self.client_secret is not None and self.client_certificate is not None:
            raise ConfigurationError(
                f"set {ENV_PREFIX}CLIENT_SECRET or {ENV_PREFIX}CLIENT_CERTIFICATE, not both"
            )
        if self.client_certificate is not None and not self.client_certificate.is_file():
            raise ConfigurationError(
                f"{ENV_PREFIX}CLIENT_CERTIFICATE: no file at {self.client_certificate}"
            )


def _describe(error: Any) -> str:
    field = str(error["loc"][0]) if error.get("loc") else ""
    name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
    context = error.get("ctx") or {}
    if error.get("type") == "value_error" and "error" in context:
        return f"{name}: {context['error']}"  # our validators' words; they never quote a secret
    return f"{name}: {error.get('msg', 'invalid value')}"  # pydantic's words never quote the input


def load_defender_settings(**overrides: Any) -> DefenderSettings:
    """Read the settings; bad values become one ``ConfigurationError`` line naming the variable."""
    try:
        return DefenderSettings(**overrides)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors(include_input=False, include_url=False)]
        raise ConfigurationError("; ".join(lines)) from None
