"""What ``moorage serve`` says (and whether it starts) when its certificate would make clients
fail: the check runs before the database is touched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

import moorage.cli.serve
from moorage.cli.main import app
from moorage.services import certificates as tls

runner = CliRunner()
NOW = dt.datetime.now(dt.UTC)


def chain_dir(
    root: Path, fqdn: str = "localhost", ips: tuple[str, ...] = ("127.0.0.1",), **kwargs: object
) -> Path:
    chain = tls.generate_chain(fqdn, ips, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    tls.write_chain(chain, root)
    return root


def tls_args(
    d: Path, fqdn: str | None = "localhost", key: str = "server.key", ca: str | None = "ca.crt"
) -> list[str]:
    args = ["--tls-cert", str(d / "server.crt"), "--tls-key", str(d / key)]
    if fqdn is not None:
        args += ["--fqdn", fqdn]
    if ca is not None:
        args += ["--tls-ca", str(d / ca)]
    return args


@pytest.fixture(autouse=True)
def _never_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that passes must not start a real server inside the test."""

    def started(settings: object) -> None:
        raise AssertionError("moorage serve went past the TLS check")

    monkeypatch.setattr(moorage.cli.serve, "prepare", started)
    monkeypatch.setattr(moorage.cli.serve.logging, "basicConfig", lambda **kwargs: None)
    monkeypatch.delenv("MOORAGE_TLS_ALLOW_INVALID", raising=False)


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["serve", "--data-dir", str(tmp_path / "data"), *args], env=env)


def check(*args: str, env: dict[str, str] | None = None) -> Result:
    """``moorage certs check`` with the TLS settings in the environment."""
    values = dict(zip(args[::2], args[1::2], strict=True))
    environment = {f"MOORAGE_{k.removeprefix('--').replace('-', '_').upper()}": v for k, v in values.items()}
    return runner.invoke(app, ["certs", "check"], env={**environment, **(env or {})})


def test_a_matching_certificate_passes(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    result = check(*tls_args(d))
    assert result.exit_code == 0, result.output
    assert "TLS certificate for DNS:localhost, IP:127.0.0.1" in result.output
    assert "https://localhost/ca" in result.output
    assert check(*tls_args(d, fqdn="127.0.0.1")).exit_code == 0
    assert check(*tls_args(d, fqdn="localhost:5443")).exit_code == 0


def test_name_mismatch_refuses_to_start_with_the_fix(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    result = serve(tmp_path, *tls_args(d, fqdn="registry.example.com"))
    assert result.exit_code == 1
    out = result.output
    assert "refusing to start" in out
    assert "does not cover the registry's name 'registry.example.com'" in out
    assert "x509: certificate is valid for localhost, not registry.example.com" in out
    assert "certificate signed by unknown authority" in out
    assert "moorage certs generate --fqdn registry.example.com" in out
    assert "https://registry.example.com/ca" in out
    assert "/etc/docker/certs.d/registry.example.com/ca.crt" in out
    assert "--cert-dir" in out
    assert "--insecure-registries registry.example.com" in out
    assert "--tls-verify=false" in out
    assert "tls_allow_invalid" in out
    assert not (tmp_path / "data").exists()  # nothing was created


def test_an_address_the_certificate_does_not_name(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls", ips=())
    result = check(*tls_args(d, fqdn="35.165.223.150"))
    assert result.exit_code == 1
    assert "x509: cannot validate certificate for 35.165.223.150 because it doesn't contain any IP SANs" in (
        result.output
    )
    d2 = chain_dir(tmp_path / "tls2")
    result = check(*tls_args(d2, fqdn="10.1.1.1"))
    assert "x509: certificate is valid for 127.0.0.1, not 10.1.1.1" in result.output


def test_tls_allow_invalid_starts_with_a_warning(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    result = check(*tls_args(d, fqdn="registry.example.com"), env={"MOORAGE_TLS_ALLOW_INVALID": "true"})
    assert result.exit_code == 0, result.output
    assert "warning: starting with a certificate clients will reject" in result.output
    assert "does not cover" in result.output


def test_an_expired_certificate_refuses_to_start(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls", now=NOW - dt.timedelta(days=400), days=30)
    result = serve(tmp_path, *tls_args(d))
    assert result.exit_code == 1
    assert "expired on" in result.output
    assert "x509: certificate has expired or is not yet valid" in result.output
    assert "moorage certs generate --fqdn localhost" in result.output


def test_a_certificate_not_yet_valid_refuses_to_start(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls", now=NOW + dt.timedelta(days=3))
    result = check(*tls_args(d))
    assert result.exit_code == 1
    assert "is not valid before" in result.output
    assert "clock" in result.output


def test_a_certificate_expiring_soon_is_noted(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls", days=10)
    result = check(*tls_args(d))
    assert result.exit_code == 0
    assert "expires soon" in result.output


def test_a_key_that_is_not_the_certificates_always_refuses(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    for env in (None, {"MOORAGE_TLS_ALLOW_INVALID": "true"}):
        result = serve(tmp_path, *tls_args(d, key="ca.key"), env=env)
        assert result.exit_code == 1
        assert "cannot serve HTTPS" in result.output
        assert "does not belong to the certificate" in result.output


def test_missing_and_unusable_files_refuse(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    result = check(*tls_args(d, key="missing.key"), env={"MOORAGE_TLS_ALLOW_INVALID": "true"})
    assert result.exit_code == 1
    assert "cannot read the private key (tls_key)" in result.output
    assert "No such file" in result.output

    result = check("--tls-cert", str(d / "server.key"), "--tls-key", str(d / "server.key"))
    assert result.exit_code == 1
    assert "holds no PEM certificate" in result.output

    result = check("--tls-cert", str(d / "server.crt"))
    assert result.exit_code == 1
    assert "HTTPS needs both tls_cert and tls_key; tls_key is not set" in result.output

    result = check(*tls_args(d, ca="ca.key"))
    assert result.exit_code == 1
    assert "holds a private key" in result.output


def test_a_ca_that_did_not_sign_the_certificate(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    other = chain_dir(tmp_path / "other")
    result = check(*tls_args(d, ca=None), "--tls-ca", str(other / "ca.crt"))
    assert result.exit_code == 1
    assert "was not signed by the CA in tls_ca" in result.output
    assert "x509: certificate signed by unknown authority" in result.output


def test_a_certificate_with_only_a_common_name(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = check(*tls_args(tmp_path, ca=None))
    assert result.exit_code == 1
    assert "x509: certificate relies on legacy Common Name field, use SANs instead" in result.output
    assert "self-signed" in result.output


def test_without_fqdn_the_covered_names_are_noted(tmp_path: Path) -> None:
    d = chain_dir(tmp_path / "tls")
    result = check(*tls_args(d, fqdn=None))
    assert result.exit_code == 0
    assert "fqdn is not set" in result.output
    assert "DNS:localhost, IP:127.0.0.1" in result.output
