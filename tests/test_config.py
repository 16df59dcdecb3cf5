"""Defender settings: cloud presets, overrides, one-line errors, secrets kept out of sight."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from commands.config import CLOUDS, DefenderSettings, load_defender_settings
from commands.errors import ConfigurationError

SECRET = "s3cr3t-V4lue~with.odd/chars"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DEFENDER_* from the machine, and no .env in the working directory."""
    for name in list(os.environ):
        if name.upper().startswith("DEFENDER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def load(**values: object) -> DefenderSettings:
    return load_defender_settings(**values)


def error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_defender_settings()
    return str(caught.value)


@pytest.mark.parametrize(
    ("cloud", "api", "authority", "scope"),
    [
        (
            "commercial",
            "https://api.security.microsoft.com",
            "https://login.microsoftonline.com",
            "https://api.securitycenter.microsoft.com/.default",
        ),
        (
            "gcc",
            "https://api-gcc.securitycenter.microsoft.us",
            "https://login.microsoftonline.com",
            "https://api-gcc.securitycenter.microsoft.us/.default",
        ),
        (
            "gcc-high",
            "https://api-gov.securitycenter.microsoft.us",
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us/.default",
        ),
        (
            "dod",
            "https://api-gov.securitycenter.microsoft.us",
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us/.default",
        ),
    ],
)
def test_cloud_presets(
    monkeypatch: pytest.MonkeyPatch, cloud: str, api: str, authority: str, scope: str
) -> None:
    monkeypatch.setenv("DEFENDER_CLOUD", cloud.upper())
    settings = load_defender_settings()
    assert (settings.cloud, settings.api_url, settings.authority_host, settings.scope) == (
        cloud,
        api,
        authority,
        scope,
    )
    assert settings.instance_discovery is True  # Microsoft's hosts need no discovery call


def test_defaults() -> None:
    settings = load()
    assert settings.cloud == "commercial"
    assert settings.timeout_seconds == 30
    assert settings.client_secret is None
    assert set(CLOUDS) == {"commercial", "gcc", "gcc-high", "dod"}


def test_each_preset_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFENDER_CLOUD", "gcc-high")
    monkeypatch.setenv("DEFENDER_API_URL", "https://eu.api.security.microsoft.com/")
    monkeypatch.setenv("DEFENDER_AUTHORITY_HOST", "login.example.test:8443")
    monkeypatch.setenv("DEFENDER_SCOPE", "https://securitycenter.onmicrosoft.us/windowsatpservice")
    monkeypatch.setenv("DEFENDER_TENANT_ID", "contoso.onmicrosoft.com")
    settings = load_defender_settings()
    assert settings.api_url == "https://eu.api.security.microsoft.com"
    assert settings.authority_host == "https://login.example.test:8443"
    assert settings.scope == "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"
    assert settings.authority == "https://login.example.test:8443/contoso.onmicrosoft.com"
    assert settings.instance_discovery is False  # not Microsoft's: never ask about it


def test_keyword_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFENDER_TIMEOUT_SECONDS", "12")
    assert load(timeout_seconds=3).timeout_seconds == 3
    assert load().timeout_seconds == 12


def test_dotenv_is_read_and_extras_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DEFENDER_CLOUD=dod\nDEFENDER_CLIENT_ID=abc\nDEFENDER_SOMETHING_NEW=1\nSLACK_TOKEN=x\n"
    )
    settings = load()
    assert (settings.cloud, settings.client_id) == ("dod", "abc")


def test_http_api_url_is_allowed_for_a_local_simulator() -> None:
    assert load(api_url="http://127.0.0.1:8080").api_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"DEFENDER_CLOUD": "azure"},
            "DEFENDER_CLOUD: 'azure' is not one of commercial, gcc, gcc-high, dod",
        ),
        (
            {"DEFENDER_TIMEOUT_SECONDS": "soon"},
            "DEFENDER_TIMEOUT_SECONDS: Input should be a valid number",
        ),
        ({"DEFENDER_TIMEOUT_SECONDS": "0"}, "DEFENDER_TIMEOUT_SECONDS: Input should be greater"),
        ({"DEFENDER_AUTHORITY_HOST": "http://login.test"}, "DEFENDER_AUTHORITY_HOST: "),
        ({"DEFENDER_AUTHORITY_HOST": "https://login.test/tenant"}, "has a path"),
        ({"DEFENDER_API_URL": "ftp://x"}, "DEFENDER_API_URL: 'ftp://x' is not an http(s) URL"),
        ({"DEFENDER_API_URL": "https://api.security.microsoft.com/api"}, "ends with /api"),
        ({"DEFENDER_TENANT_ID": "../evil"}, "DEFENDER_TENANT_ID: a tenant is a GUID"),
    ],
)
def test_errors_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    message = error(monkeypatch, **env)
    assert expected in message
    assert "\n" not in message
    assert "pydantic" not in message


def test_several_errors_stay_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error(monkeypatch, DEFENDER_CLOUD="x", DEFENDER_TIMEOUT_SECONDS="-1")
    assert message.startswith("DEFENDER_CLOUD: ")
    assert "; DEFENDER_TIMEOUT_SECONDS: " in message
    assert "\n" not in message


def test_secret_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFENDER_CLIENT_SECRET", SECRET)
    settings = load_defender_settings()
    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in text
    message = error(monkeypatch, DEFENDER_CLIENT_SECRET=SECRET, DEFENDER_CLOUD="nope")
    assert SECRET not in message


def test_secret_of_the_wrong_type_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load(client_secret=12345678)
    assert "12345678" not in str(caught.value)
    assert str(caught.value).startswith("DEFENDER_CLIENT_SECRET: ")


def test_blank_values_are_unset() -> None:
    settings = load(client_secret="", client_certificate="  ", tenant_id="")
    assert (settings.client_secret, settings.client_certificate, settings.tenant_id) == (
        None,
        None,
        None,
    )


def test_require_credentials_names_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load().require_credentials()
    assert str(caught.value) == (
        "missing settings: DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID,"
        " DEFENDER_CLIENT_SECRET or DEFENDER_CLIENT_CERTIFICATE"
    )
    with pytest.raises(ConfigurationError) as caught:
        load(tenant_id="t", client_secret=SECRET).require_credentials()
    assert str(caught.value) == "missing settings: DEFENDER_CLIENT_ID"


def test_require_credentials_refuses_both(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text("x")
    settings = load(tenant_id="t", client_id="c", client_secret=SECRET, client_certificate=pem)
    with pytest.raises(ConfigurationError) as caught:
        settings.require_credentials()
    assert "not both" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_require_credentials_checks_the_certificate_file(tmp_path: Path) -> None:
    settings = load(tenant_id="t", client_id="c", client_certificate=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="DEFENDER_CLIENT_CERTIFICATE: no file at"):
        settings.require_credentials()


def test_complete_credentials_pass() -> None:
    load(tenant_id="t", client_id="c", client_secret=SECRET).require_credentials()
