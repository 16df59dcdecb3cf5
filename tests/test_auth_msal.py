"""The real MSAL path against the simulator's sign-in authority over TLS.

The simulator serves https on 127.0.0.1 with a self-signed certificate; it is trusted the
way production trusts a private CA: through REQUESTS_CA_BUNDLE (MSAL's requests session;
CURL_CA_BUNDLE too, which this machine exports) and SSL_CERT_FILE (httpx). Each test builds
a fresh provider, since MSAL remembers failures for a while.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands.auth import DefenderAuth, MsalTokenProvider, load_certificate_credential
from commands.client import DefenderClient
from commands.config import DefenderSettings, load_defender_settings
from commands.errors import AuthenticationError, ConfigurationError, TransportError
from commands.simulator import Fault
from tests.helpers.defender import CLIENT_ID, SECRET, TENANT, Harness, build_scenario, machine
from tests.helpers.defender import running_harness as _running
from tests.helpers.tls import ClientCertificate, make_client_certificate, trust_ca


@pytest.fixture
def certificate(tmp_path: Path) -> ClientCertificate:
    return make_client_certificate(tmp_path)


@pytest.fixture
def tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certificate: ClientCertificate
) -> Iterator[Harness]:
    """The simulator over https, registered with a secret and a certificate, CA trusted."""
    scenario = build_scenario(client_certificate_pem=certificate.certificate_pem)
    with _running(scenario, tls=True) as harness:
        assert harness.sim.ca_pem_path is not None
        trust_ca(monkeypatch, tmp_path, harness.sim.ca_pem_path)
        yield harness


def settings_for(harness: Harness, **overrides: Any) -> DefenderSettings:
    values: dict[str, Any] = {
        "_env_file": None,
        "api_url": harness.sim.base_url,
        "authority_host": harness.sim.authority_host,
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return load_defender_settings(**values)


def token_requests(harness: Harness) -> list[Any]:
    return [r for r in harness.sim.requests if r.path.endswith("/oauth2/v2.0/token")]


def client_for(harness: Harness, provider: MsalTokenProvider) -> DefenderClient:
    settings = settings_for(harness)
    return DefenderClient(
        settings, token_provider=provider, sleep=harness.sleep, rng=random.Random(1)
    )


def test_secret_credential(tls: Harness) -> None:
    provider = MsalTokenProvider(settings_for(tls))
    token = provider.token()
    assert token and provider.token() == token  # the second one from MSAL's cache
    (request,) = token_requests(tls)
    assert request.body["client_secret"] == "[redacted]"  # the simulator's log redacts it
    assert request.body["grant_type"] == "client_credentials"
    assert request.body["scope"] == "https://api.securitycenter.microsoft.com/.default"


def test_certificate_credential_signs_a_client_assertion(
    tls: Harness, certificate: ClientCertificate
) -> None:
    settings = settings_for(tls, client_secret=None, client_certificate=certificate.pem_path)
    with client_for(tls, MsalTokenProvider(settings)) as client:
        assert client.get_machine(machine(1)).id == machine(1)
    (request,) = token_requests(tls)
    assert "client_secret" not in request.body
    assert request.body["client_assertion_type"].endswith(":jwt-bearer")


def test_certificate_of_another_key_is_refused(tls: Harness, tmp_path: Path) -> None:
    other = make_client_certificate(tmp_path, "someone-else")
    settings = settings_for(tls, client_secret=None, client_certificate=other.pem_path)
    with pytest.raises(AuthenticationError) as caught:
        MsalTokenProvider(settings).token()
    assert caught.value.error == "invalid_client"


def test_one_token_request_for_many_api_calls(tls: Harness) -> None:
    provider = MsalTokenProvider(settings_for(tls))
    with client_for(tls, provider) as client:
        for _ in range(20):
            client.get_machine(machine(1))
        client.library_files()
    assert len(token_requests(tls)) == 1


def test_expired_token_gets_one_new_token_and_one_retry(tls: Harness) -> None:
    provider = MsalTokenProvider(settings_for(tls))
    with client_for(tls, provider) as client:
        client.get_machine(machine(1))
        tls.sim.expire_tokens()  # Defender now refuses the token MSAL still holds as fresh
        tls.sim.clear_requests()
        assert client.get_machine(machine(1)).id == machine(1)
    paths = [r.path for r in tls.sim.requests]
    assert paths == [
        f"/api/machines/{machine(1)}",  # 401
        f"/{TENANT}/oauth2/v2.0/token",  # one new token
        f"/api/machines/{machine(1)}",  # one retry
    ]


def test_wrong_secret_is_refused_without_showing_it(tls: Harness) -> None:
    wrong = "WrongSecret-9f8e7d"
    provider = MsalTokenProvider(settings_for(tls, client_secret=wrong))
    with pytest.raises(AuthenticationError) as caught:
        provider.token()
    assert caught.value.error == "invalid_client"
    assert "AADSTS7000215" in caught.value.description
    assert wrong not in str(caught.value)
    assert wrong not in repr(caught.value.args)


def test_the_client_surfaces_authentication_errors(tls: Harness) -> None:
    provider = MsalTokenProvider(settings_for(tls, client_secret="nope"))
    with client_for(tls, provider) as client, pytest.raises(AuthenticationError):
        client.get_machine(machine(1))
    assert not [r for r in tls.sim.requests if r.path.startswith("/api")]


def test_no_instance_discovery_for_a_private_authority(
    tls: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any attempt to reach Microsoft's discovery host fails loudly instead of hanging."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and "microsoft" in host:
            raise AssertionError(f"tried to reach {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    settings = settings_for(tls)
    assert settings.instance_discovery is False
    MsalTokenProvider(settings).token()
    paths = [r.path for r in tls.sim.requests]
    assert paths == [
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        f"/{TENANT}/oauth2/v2.0/token",
    ]


def test_unknown_tenant(tls: Harness) -> None:
    provider = MsalTokenProvider(
        settings_for(tls, tenant_id="11111111-2222-3333-4444-555555555555")
    )
    with pytest.raises(AuthenticationError):
        provider.token()


def test_unreachable_authority_is_a_transport_error(tls: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = MsalTokenProvider(settings_for(tls, authority_host=f"https://127.0.0.1:{port}"))
    with pytest.raises(TransportError, match="unreachable"):
        provider.token()


def test_an_authority_failing_with_5xx_is_a_transport_error(tls: Harness) -> None:
    """MSAL raises its own MsalServiceError for a 5xx: callers that tolerate Defender's
    errors (the tracker, the outbox) must see one of those, not a crash."""
    token_path = r"/oauth2/v2\.0/token$"
    tls.sim.fault(Fault(method="POST", path_regex=token_path, status=503))
    provider = MsalTokenProvider(settings_for(tls))
    asked = len(token_requests(tls))
    for _ in range(2):  # the second from MSAL's throttle (5 s after a 5xx), not the network
        with pytest.raises(TransportError, match="503"):
            provider.token()
    assert len(token_requests(tls)) == asked + 1


def test_untrusted_authority_fails(
    tls: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certificate: ClientCertificate
) -> None:
    """Trust comes from the environment only: with another CA, TLS is refused."""
    other_ca = tmp_path / "other.pem"
    other_ca.write_text(certificate.certificate_pem)
    trust_ca(monkeypatch, tmp_path, other_ca)
    with pytest.raises((TransportError, AuthenticationError)):
        MsalTokenProvider(settings_for(tls)).token()


def test_provider_requires_credentials(tls: Harness) -> None:
    with pytest.raises(ConfigurationError, match="DEFENDER_CLIENT_SECRET or"):
        MsalTokenProvider(settings_for(tls, client_secret=None))


# --- the certificate file ----------------------------------------------------------------------


def test_certificate_credential_from_pem(certificate: ClientCertificate) -> None:
    credential = load_certificate_credential(certificate.pem_path)
    assert credential["thumbprint"] == certificate.sha1_thumbprint
    assert "PRIVATE KEY" in credential["private_key"]


def test_certificate_before_key_and_with_a_chain(tmp_path: Path) -> None:
    leaf = make_client_certificate(tmp_path, "leaf")
    other = make_client_certificate(tmp_path, "issuer")
    key = leaf.pem_path.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(other.certificate_pem + leaf.certificate_pem + key)
    assert load_certificate_credential(mixed)["thumbprint"] == leaf.sha1_thumbprint


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no private key"),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
        ("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "cannot be read"),
    ],
)
def test_bad_certificate_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        load_certificate_credential(path)


def test_key_without_its_certificate(tmp_path: Path) -> None:
    leaf = make_client_certificate(tmp_path, "leaf")
    other = make_client_certificate(tmp_path, "other")
    key = leaf.pem_path.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    path = tmp_path / "wrong.pem"
    path.write_text(key + other.certificate_pem)
    with pytest.raises(ConfigurationError, match=r"no certificate .* matches"):
        load_certificate_credential(path)


# --- DefenderAuth alone ------------------------------------------------------------------------


class CountingProvider:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    def token(self, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        return f"token-{len(self.calls)}"


def test_defender_auth_retries_a_401_once_with_a_fresh_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) < 3 else 200)

    provider = CountingProvider()
    with httpx.Client(auth=DefenderAuth(provider), transport=httpx.MockTransport(handler)) as http:
        assert http.get("https://defender.test/api/x").status_code == 401
        assert http.get("https://defender.test/api/x").status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]
    assert provider.calls == [False, True, False]
