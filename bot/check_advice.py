"""What ``lrbot check`` tells an operator about Defender sign-in: pure functions.

A refused sign-in is explained from its AADSTS code (Entra's error number, in the error
description) in words, with the fix; a token's roles are read from its payload without
verifying it: it is our own token, just issued by the authority we trust.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

__all__ = [
    "GRANT_ROLES",
    "NEEDED_ROLES",
    "missing_roles",
    "sign_in_advice",
    "token_roles",
]

NEEDED_ROLES = ("Machine.LiveResponse", "Machine.Read.All", "Library.Manage")
GRANT_ROLES = (
    "in the Entra admin center, App registrations > the app > API permissions > Add a"
    " permission > APIs my organization uses > WindowsDefenderATP > Application permissions;"
    " then Grant admin consent"
)

_AADSTS = re.compile(r"AADSTS(\d+)")

# AADSTS code -> (what it means, the fix).
_ADVICE: dict[str, tuple[str, str]] = {
    "7000215": (
        "the client secret is wrong",
        "set DEFENDER_CLIENT_SECRET to the secret's Value (not its Secret ID) from App"
        " registrations > the app > Certificates & secrets; create a new one if it expired",
    ),
    "7000222": (
        "the client secret has expired",
        "create a new secret under App registrations > the app > Certificates & secrets and"
        " set DEFENDER_CLIENT_SECRET",
    ),
    "90002": (
        "the tenant was not found",
        "set DEFENDER_TENANT_ID to the Directory (tenant) ID on the app's Overview page",
    ),
    "900023": (
        "the tenant id is not a valid tenant",
        "set DEFENDER_TENANT_ID to the Directory (tenant) ID on the app's Overview page",
    ),
    "700016": (
        "the application was not found in the tenant",
        "set DEFENDER_CLIENT_ID to the Application (client) ID on the app's Overview page, and"
        " DEFENDER_TENANT_ID to the tenant the app is registered in",
    ),
    "65001": (
        "no administrator has consented to the app's permissions",
        f"grant admin consent: {GRANT_ROLES}",
    ),
    "700027": (
        "the certificate was refused (not the one uploaded to the app, or the assertion is"
        " invalid)",
        "upload the certificate in DEFENDER_CLIENT_CERTIFICATE under App registrations > the"
        " app > Certificates & secrets, or point the setting at the PEM whose certificate is"
        " there",
    ),
    "700024": (
        "the certificate's signed assertion is outside its valid time",
        "check this machine's clock (it signs the assertion with the current time)",
    ),
    "7000274": (
        "the certificate has expired or is not yet valid",
        "upload a current certificate to the app and point DEFENDER_CLIENT_CERTIFICATE at it",
    ),
    "50012": (
        "the certificate or signed assertion was refused",
        "check that DEFENDER_CLIENT_CERTIFICATE holds the certificate uploaded to the app",
    ),
}

_BY_ERROR: dict[str, str] = {
    "invalid_authority": "90002",  # MSAL's word for a tenant the authority does not know
    "invalid_tenant": "90002",
}


def sign_in_advice(error: str, description: str) -> tuple[str, str]:
    """(what went wrong, the fix) for a refused sign-in; never quotes anything secret."""
    found = _AADSTS.search(description)
    code = found.group(1) if found else _BY_ERROR.get(error, "")
    if code in _ADVICE:
        meaning, fix = _ADVICE[code]
        return f"{meaning} (AADSTS{code})", fix
    named = f"AADSTS{code}" if code else error or "an unknown error"
    return (
        f"the sign-in authority refused a token ({named})",
        f"look up {named} in Microsoft's AADSTS error list; check DEFENDER_TENANT_ID,"
        " DEFENDER_CLIENT_ID and the credential",
    )


def _payload(token: str) -> object:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    part = parts[1]
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error):
        return None


def token_roles(token: str) -> frozenset[str] | None:
    """The ``roles`` claim of an access token (unverified); None when it is not a JWT."""
    claims = _payload(token)
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(str(role) for role in roles)


def missing_roles(granted: frozenset[str]) -> list[str]:
    """The roles live response needs that the token does not carry, in a fixed order."""
    return [role for role in NEEDED_ROLES if role not in granted]
