"""TLS certificates: a private CA and a server certificate for the registry's name, and the
checks ``moorage serve`` runs on the certificate it is given before it listens.

Clients written in Go (docker, skopeo, oras, containerd) verify a registry's certificate
strictly: it must chain to a CA they trust ("x509: certificate signed by unknown
authority" otherwise), name the host they dialled in its subject alternative names ("x509:
certificate is valid for X, not Y"; the Common Name is ignored), be within its validity
period, and allow server authentication. The checks below apply the same rules, so a
registry that starts cleanly is one those clients can reach.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moorage.services.errors import AlreadyExists, InvalidInput

#: File names ``generate`` writes, and the ones clients look for (``ca.crt`` in a cert dir).
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
DEFAULT_SERVER_DAYS = 365
DEFAULT_CA_DAYS = 3650
#: Certificates that expire sooner than this are reported at start.
EXPIRY_WARNING = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clocks run a little slow
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

PrivateKey = ec.EllipticCurvePrivateKey


# -- names ----------------------------------------------------------------------------------
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def host_of(fqdn: str) -> str:
    """The host part of ``fqdn`` (which may carry a ``:port``, or be a bracketed IPv6 address)."""
    value = fqdn.strip().lower().rstrip(".")
    if value.startswith("["):
        return value[1 : value.index("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value


def check_dns_name(name: str, *, allow_wildcard: bool = False) -> str:
    """``name`` normalised (lower case, no trailing dot), or ``InvalidInput``."""
    value = name.strip().lower().rstrip(".")
    labels = value.split(".")
    if allow_wildcard and labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not value or len(value) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput(
            f"{name[:100]!r} is not a host name: letters, digits and '-' in dot-separated labels "
            "(e.g. registry.example.com), or an IP address",
            field="fqdn",
        )
    return value


def _matches(pattern: str, host: str) -> bool:
    """Go's and RFC 6125's rule: ``*`` only as the whole left-most label, matching one label."""
    pattern = pattern.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:] and host.split(".", 1)[0] != ""
    return False


def subject_names(cert: x509.Certificate) -> list[str]:
    """The certificate's subject alternative names as ``DNS:name`` / ``IP:address``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)] + [
        f"IP:{a}" for a in san.get_values_for_type(x509.IPAddress)
    ]


def covers(cert: x509.Certificate, host: str) -> bool:
    """Whether a client dialling ``host`` accepts ``cert``'s names (IP hosts match IP SANs only)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = host_of(host)
    address = parse_ip(host)
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    return any(_matches(name, host) for name in san.get_values_for_type(x509.DNSName))


def go_name_error(cert: x509.Certificate, host: str) -> str:
    """The error Go clients (docker, skopeo, oras) report when ``cert`` does not cover ``host``."""
    names = subject_names(cert)
    if parse_ip(host) is not None:
        ips = [n[3:] for n in names if n.startswith("IP:")]
        if not ips:
            return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
        return f"x509: certificate is valid for {', '.join(ips)}, not {host}"
    dns = [n[4:] for n in names if n.startswith("DNS:")]
    if not dns:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {', '.join(dns)}, not {host}"


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``AB:CD:…``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


# -- generating -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratedChain:
    """PEM bytes of a CA and a server certificate it signed."""

    ca_cert: bytes
    ca_key: bytes
    server_cert: bytes
    server_key: bytes

    @property
    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_cert)

    @property
    def server(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.server_cert)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_chain(
    fqdn: str,
    ips: Sequence[str] = (),
    *,
    now: dt.datetime,
    days: int = DEFAULT_SERVER_DAYS,
    ca_days: int = DEFAULT_CA_DAYS,
    extra_names: Sequence[str] = (),
) -> GeneratedChain:
    """A new CA (``CA:TRUE``, ``keyCertSign``) and a server certificate it signed, whose
    subject alternative names are ``fqdn`` (a DNS name, or an IP address), ``extra_names``
    and every address in ``ips``; extended key usage ``serverAuth``. Keys: ECDSA P-256."""
    if days < 1 or ca_days < 1:
        raise InvalidInput("a certificate must be valid for at least one day", field="days")
    names: list[x509.GeneralName] = []
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in [fqdn, *extra_names]:
        address = parse_ip(host_of(text))
        if address is not None:
            addresses.append(address)
        else:
            names.append(x509.DNSName(check_dns_name(host_of(text), allow_wildcard=True)))
    for text in ips:
        address = parse_ip(text.strip())
        if address is None:
            raise InvalidInput(f"{text[:100]!r} is not an IP address", field="ip")
        addresses.append(address)
    unique_addresses = list(dict.fromkeys(addresses))
    unique_names = list(dict.fromkeys(names))
    sans: list[x509.GeneralName] = [*unique_names, *(x509.IPAddress(a) for a in unique_addresses)]
    common_name = host_of(fqdn)[:64]
    start = now - _BACKDATE

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Moorage CA for {common_name}"[:64]),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=max(ca_days, days)))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return GeneratedChain(
        ca_cert.public_bytes(pem), _key_pem(ca_key), server_cert.public_bytes(pem), _key_pem(server_key)
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary name with ``mode`` from the start, flush, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_chain(chain: GeneratedChain, directory: Path, *, force: bool = False) -> dict[str, Path]:
    """Write ``ca.crt``, ``ca.key``, ``server.crt``, ``server.key`` (keys 0600) into ``directory``;
    ``AlreadyExists`` when any is there and not ``force``. Returns the paths by file name."""
    paths = {name: directory / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise AlreadyExists(f"{', '.join(existing)} already exist: pass --force to replace them", field="out")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(paths[CA_KEY], chain.ca_key, 0o600)
    _write(paths[SERVER_KEY], chain.server_key, 0o600)
    _write(paths[CA_CERT], chain.ca_cert, 0o644)
    _write(paths[SERVER_CERT], chain.server_cert, 0o644)
    return paths


# -- checking what the server is given --------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Something wrong with the TLS settings.

    ``fatal``: the server cannot serve TLS at all (missing or unreadable file, a key that is
    not the certificate's). Otherwise clients will refuse the certificate (``kind`` says why:
    ``name``, ``expired``, ``not-yet-valid``, ``usage``, ``issuer``).
    """

    kind: str
    message: str
    fatal: bool = False


@dataclass
class TlsReport:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # what the certificate covers
    certificate: x509.Certificate | None = None

    @property
    def fatal(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    def has(self, kind: str) -> bool:
        return any(p.kind == kind for p in self.problems)


def _read(path: Path, what: str, report: TlsReport) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        report.problems.append(Problem("file", f"cannot read the {what} {path}: {exc.strerror or exc}", True))
        return None


def _load_certs(data: bytes, path: Path, what: str, report: TlsReport) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        report.problems.append(Problem("file", f"the {what} {path} holds no PEM certificate", True))
        return []


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _utc(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def check_server_tls(
    cert_path: Path | None, key_path: Path | None, ca_path: Path | None, fqdn: str | None, *, now: dt.datetime
) -> TlsReport:
    """Everything a client would object to in the certificate ``moorage serve`` is given."""
    report = TlsReport()
    if cert_path is None and key_path is None:
        if ca_path is not None:
            report.notes.append("tls_ca is set but tls_cert and tls_key are not: serving plain HTTP")
        return report
    if cert_path is None or key_path is None:
        missing = "tls_cert" if cert_path is None else "tls_key"
        report.problems.append(
            Problem("file", f"HTTPS needs both tls_cert and tls_key; {missing} is not set", True)
        )
        return report
    cert_data = _read(cert_path, "certificate (tls_cert)", report)
    key_data = _read(key_path, "private key (tls_key)", report)
    certs = (
        _load_certs(cert_data, cert_path, "certificate (tls_cert)", report) if cert_data is not None else []
    )
    key: PrivateKeyTypes | None = None
    if key_data is not None:
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except TypeError:
            report.problems.append(
                Problem(
                    "file",
                    f"the private key {key_path} is encrypted: give the server an unencrypted key "
                    "(readable by its user only, mode 0600)",
                    True,
                )
            )
        except (ValueError, UnsupportedAlgorithm):
            report.problems.append(
                Problem("file", f"the private key (tls_key) {key_path} holds no PEM private key", True)
            )
    if not certs:
        return report
    leaf, intermediates = certs[0], certs[1:]
    report.certificate = leaf
    report.names = subject_names(leaf)
    if key is not None and _public(key.public_key()) != _public(leaf.public_key()):
        report.problems.append(
            Problem(
                "key",
                f"the private key {key_path} does not belong to the certificate {cert_path} "
                "(they come from different generations or hosts)",
                True,
            )
        )

    # Validity period.
    if leaf.not_valid_after_utc <= now:
        report.problems.append(
            Problem(
                "expired",
                f"the certificate {cert_path} expired on {_utc(leaf.not_valid_after_utc)}; clients fail with "
                '"x509: certificate has expired or is not yet valid"',
            )
        )
    elif leaf.not_valid_before_utc > now:
        report.problems.append(
            Problem(
                "not-yet-valid",
                f"the certificate {cert_path} is not valid before {_utc(leaf.not_valid_before_utc)} "
                "(is this machine's clock right?); clients fail with "
                '"x509: certificate has expired or is not yet valid"',
            )
        )
    elif leaf.not_valid_after_utc - now < EXPIRY_WARNING:
        report.notes.append(f"the certificate expires soon, on {_utc(leaf.not_valid_after_utc)}")

    # Names.
    if not report.names:
        report.problems.append(
            Problem(
                "name",
                f"the certificate {cert_path} has no subject alternative names; clients ignore its Common Name "
                'and fail with "x509: certificate relies on legacy Common Name field, use SANs instead"',
            )
        )
    elif fqdn is None:
        report.notes.append(
            f"fqdn is not set: clients must reach the registry by a name the certificate covers "
            f"({', '.join(report.names)}); set fqdn to that name"
        )
    elif not covers(leaf, fqdn):
        host = host_of(fqdn)
        shown = ", ".join(n.split(":", 1)[1] for n in report.names)
        report.problems.append(
            Problem(
                "name",
                f"the certificate {cert_path} does not cover the registry's name {host!r}: it is valid "
                f'for {shown}; clients that reach the registry as {host} fail with "{go_name_error(leaf, host)}"',
            )
        )

    # Usage.
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if (
            ExtendedKeyUsageOID.SERVER_AUTH not in eku
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
        ):
            report.problems.append(
                Problem(
                    "usage",
                    f"the certificate {cert_path} is not for servers (no serverAuth extended key usage); "
                    'clients fail with "x509: certificate specifies an incompatible key usage"',
                )
            )
    except x509.ExtensionNotFound:
        pass

    # Issuer: the CA served at /ca must be the one clients need to trust.
    self_signed = _issued_by(leaf, leaf)
    if ca_path is None:
        if self_signed:
            report.notes.append(
                "the certificate is self-signed: clients must trust it as their CA certificate (ca.crt)"
            )
        else:
            report.notes.append(
                f"tls_ca is not set, so GET /ca answers 404; clients must trust the issuer of the certificate "
                f"({leaf.issuer.rfc4514_string()}) by other means"
            )
        return report
    ca_data = _read(ca_path, "CA certificate (tls_ca)", report)
    if ca_data is None:
        return report
    if b"PRIVATE KEY" in ca_data:
        report.problems.append(
            Problem(
                "file",
                f"tls_ca {ca_path} holds a private key: it must be the CA's "
                "certificate only (ca.crt), which the registry serves to anyone",
                True,
            )
        )
        return report
    cas = _load_certs(ca_data, ca_path, "CA certificate (tls_ca)", report)
    chain_ok = False
    current, remaining = leaf, list(intermediates)
    for _ in range(len(intermediates) + 1):
        if any(_issued_by(current, ca) for ca in cas):
            chain_ok = True
            break
        step = next((c for c in remaining if _issued_by(current, c)), None)
        if step is None:
            break
        remaining.remove(step)
        current = step
    if cas and not chain_ok:
        report.problems.append(
            Problem(
                "issuer",
                f"the certificate {cert_path} was not signed by the CA in tls_ca {ca_path}: clients that trust "
                'that CA fail with "x509: certificate signed by unknown authority"',
            )
        )
    for ca in cas:
        if ca.not_valid_after_utc <= now:
            report.problems.append(
                Problem("expired", f"the CA certificate {ca_path} expired on {_utc(ca.not_valid_after_utc)}")
            )
    return report


def ca_pem(path: Path) -> bytes:
    """The certificates in ``path`` re-encoded as PEM (so nothing but certificates is ever served).

    Raises ``OSError`` when unreadable and ``ValueError`` when it holds no certificate.
    """
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
