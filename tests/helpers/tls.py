"""TLS material for tests: a client certificate for assertions, and trusting a CA by environment.

Trust goes through the standard environment only, as in production: ``REQUESTS_CA_BUNDLE``
(and ``CURL_CA_BUNDLE``, which this machine exports and which requests also reads) for MSAL,
``SSL_CERT_FILE`` for httpx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["ClientCertificate", "make_client_certificate", "trust_ca"]

_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def trust_ca(monkeypatch: pytest.MonkeyPatch, directory: Path, ca_pem_path: str | Path) -> Path:
    """Make a bundle holding only ``ca_pem_path``'s certificate and point the environment at it."""
    bundle = directory / "ca-bundle.pem"
    bundle.write_bytes(Path(ca_pem_path).read_bytes())
    for name in _CA_VARIABLES:
        monkeypatch.setenv(name, str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return bundle


@dataclass(frozen=True)
class ClientCertificate:
    """An app credential: ``pem_path`` holds key and certificate; ``certificate_pem`` is public."""

    pem_path: Path
    certificate_pem: str
    sha1_thumbprint: str


def make_client_certificate(directory: Path, name: str = "lrbot-test") -> ClientCertificate:
    """A self-signed RSA certificate and its key in one PEM (for DEFENDER_CLIENT_CERTIFICATE)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path = directory / f"{name}.pem"
    path.write_bytes(key_pem + cert_pem)
    path.chmod(0o600)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    return ClientCertificate(path, cert_pem.decode(), thumbprint)
