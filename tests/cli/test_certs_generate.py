"""``moorage certs generate``: a CA and a server certificate that verify the way clients verify,
written with private keys readable by their owner only; ``GET /ca`` hands out the CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from typer.testing import CliRunner

from conftest import make_settings
from moorage.app import create_app
from moorage.cli.main import app
from moorage.services import certificates as tls

runner = CliRunner()


def generate(out: Path, *args: str) -> tuple[x509.Certificate, x509.Certificate]:
    result = runner.invoke(app, ["certs", "generate", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    return ca, server


def verify(ca: x509.Certificate, server: x509.Certificate, name: x509.DNSName | x509.IPAddress) -> None:
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(name)
    chain = verifier.verify(server, [])
    assert chain[-1] == ca


def test_generate_writes_a_chain_that_verifies_for_the_fqdn_and_each_ip(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    ca, server = generate(out, "--fqdn", "registry.example.com", "--ip", "10.0.0.5", "--ip", "::1")

    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "server.crt", "server.key"]
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    verify(ca, server, x509.DNSName("registry.example.com"))
    verify(ca, server, x509.IPAddress(ipaddress.ip_address("10.0.0.5")))
    verify(ca, server, x509.IPAddress(ipaddress.ip_address("::1")))
    with pytest.raises(VerificationError):
        verify(ca, server, x509.DNSName("other.example.com"))

    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True

    # Each key is its certificate's.
    for cert, key_file in ((ca, "ca.key"), (server, "server.key")):
        key = serialization.load_pem_private_key((out / key_file).read_bytes(), password=None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert key.public_key().public_bytes(
            serialization.Encoding.DER, spki
        ) == cert.public_key().public_bytes(serialization.Encoding.DER, spki)


def test_generate_prints_the_settings_and_how_clients_trust_the_ca(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = runner.invoke(app, ["certs", "generate", "--fqdn", "registry.example.com", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'fqdn = "registry.example.com"' in result.output
    assert f'tls_cert = "{(out / "server.crt").resolve()}"' in result.output
    assert f'tls_key = "{(out / "server.key").resolve()}"' in result.output
    assert f'tls_ca = "{(out / "ca.crt").resolve()}"' in result.output
    assert "/etc/docker/certs.d/registry.example.com/ca.crt" in result.output
    assert "--cert-dir" in result.output
    assert "https://registry.example.com/ca" in result.output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_the_chain(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    generate(out, "--fqdn", "localhost", "--ip", "127.0.0.1")
    for check in (["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"]):
        result = subprocess.run(
            [
                "openssl",
                "verify",
                "-purpose",
                "sslserver",
                *check,
                "-CAfile",
                str(out / "ca.crt"),
                str(out / "server.crt"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


def test_fqdn_may_be_an_address_and_days_sets_the_validity(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    ca, server = generate(out, "--fqdn", "192.168.1.20", "--days", "30")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.20")]
    assert san.get_values_for_type(x509.DNSName) == []
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=10)
    assert ca.not_valid_after_utc > server.not_valid_after_utc


def test_default_directory_is_under_the_data_dir(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["certs", "generate", "--fqdn", "localhost", "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "tls" / "server.crt").exists()


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    _, first = generate(out, "--fqdn", "localhost")
    result = runner.invoke(app, ["certs", "generate", "--fqdn", "localhost", "--out", str(out)])
    assert result.exit_code == 1
    assert "already exist" in result.output
    assert "--force" in result.output
    assert x509.load_pem_x509_certificate((out / "server.crt").read_bytes()) == first

    _, second = generate(out, "--fqdn", "localhost", "--force")
    assert second != first
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fqdn", "bad_name.example.com"], "is not a host name"),
        (["--fqdn", "-leading.example.com"], "is not a host name"),
        (["--fqdn", "registry.example.com", "--ip", "300.1.1.1"], "is not an IP address"),
        (["--fqdn", "registry.example.com", "--ip", "registry"], "is not an IP address"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "tls"
    result = runner.invoke(app, ["certs", "generate", "--out", str(out), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists()


def test_wildcard_names_cover_one_label() -> None:
    chain = tls.generate_chain("*.registry.example.com", now=dt.datetime.now(dt.UTC))
    server = chain.server
    assert tls.covers(server, "eu.registry.example.com")
    assert tls.covers(server, "EU.Registry.Example.com.")
    assert tls.covers(server, "eu.registry.example.com:5000")
    assert not tls.covers(server, "registry.example.com")
    assert not tls.covers(server, "a.eu.registry.example.com")


def test_ip_hosts_match_ip_names_only() -> None:
    chain = tls.generate_chain("localhost", ["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    assert tls.covers(chain.server, "127.0.0.1")
    assert tls.covers(chain.server, "localhost")
    assert not tls.covers(chain.server, "127.0.0.2")
    assert tls.covers(tls.generate_chain("::1", now=dt.datetime.now(dt.UTC)).server, "[::1]:5000")


# -- GET /ca --------------------------------------------------------------------------------
async def _get_ca(tmp_path: Path, tls_ca: Path | None) -> httpx.Response:
    application = create_app(make_settings(tmp_path / "data", tls_ca=tls_ca))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="https://m.test"
    ) as c:
        response = await c.get("/ca")
    await application.services.db.close()
    return response


async def test_ca_route_serves_the_ca_certificate(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    generate(out, "--fqdn", "localhost")
    response = await _get_ca(tmp_path, out / "ca.crt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-pem-file"
    assert x509.load_pem_x509_certificate(response.content) == x509.load_pem_x509_certificate(
        (out / "ca.crt").read_bytes()
    )


async def test_ca_route_without_a_ca_is_a_clear_404(tmp_path: Path) -> None:
    response = await _get_ca(tmp_path, None)
    assert response.status_code == 404
    assert "tls_ca" in response.text


async def test_ca_route_never_serves_a_private_key(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    generate(out, "--fqdn", "localhost")
    mixed = out / "bundle.pem"
    mixed.write_bytes((out / "ca.key").read_bytes() + (out / "ca.crt").read_bytes())
    response = await _get_ca(tmp_path, mixed)
    assert response.status_code == 200
    assert b"PRIVATE KEY" not in response.content
    assert (await _get_ca(tmp_path, out / "ca.key")).status_code == 404
