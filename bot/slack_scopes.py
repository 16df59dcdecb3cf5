"""The bot token scopes lrbot needs: manifest.yml's ``oauth_config.scopes.bot``, in code.

``lrbot check`` compares them with the scopes Slack says the token was granted, and
``tests/test_check.py`` keeps this list equal to the manifest's.
"""

from __future__ import annotations

__all__ = ["BOT_SCOPES", "missing_scopes"]

BOT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "chat:write.public",
    "files:write",
    "im:write",
    "usergroups:read",
    "users:read",
)


def missing_scopes(granted_header: str | None, needed: tuple[str, ...] = BOT_SCOPES) -> list[str]:
    """The needed scopes absent from Slack's ``x-oauth-scopes`` header (comma-separated)."""
    granted = {scope.strip() for scope in (granted_header or "").split(",") if scope.strip()}
    return [scope for scope in needed if scope not in granted]
