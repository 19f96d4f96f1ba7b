"""``moorage certs``: a CA and a server certificate for the registry's name, and the TLS check
``moorage serve`` runs before it listens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.options import ConfigOption, DataDirOption, fail
from moorage.config import Settings, load_settings
from moorage.services import certificates as tls
from moorage.services.clock import utcnow
from moorage.services.errors import ServiceError

certs_app = typer.Typer(
    help="TLS certificates for the registry's name (see docs/tls.md).", no_args_is_help=True
)


def _client_trust(host: str, ca_file: str) -> list[str]:
    return [
        f"Clients trust the CA ({ca_file}, also served at https://{host}/ca):",
        f"  docker:  copy it to /etc/docker/certs.d/{host}/ca.crt (use {host}:PORT when the port is not 443)",
        "  skopeo:  --cert-dir DIR (copy: --src-cert-dir / --dest-cert-dir), DIR holding only ca.crt",
        "  others:  add it to the system's trust store (update-ca-certificates)",
    ]


@certs_app.command("generate")
def generate(
    fqdn: Annotated[
        str, typer.Option("--fqdn", help="Name clients reach the registry by (a DNS name or an IP).")
    ],
    ip: Annotated[
        list[str] | None, typer.Option("--ip", help="An IP address clients may also use (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write into [default: <data_dir>/tls].")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity of the server certificate.")] = (
        tls.DEFAULT_SERVER_DAYS
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a CA and a server certificate it signed for --fqdn and each --ip:
    ca.crt, ca.key, server.crt, server.key (keys readable by you only)."""
    directory = out if out is not None else load_settings(config, data_dir=data_dir).data_dir / "tls"
    try:
        chain = tls.generate_chain(fqdn, ip or [], now=utcnow(), days=days)
        paths = tls.write_chain(chain, directory, force=force)
    except ServiceError as exc:
        raise fail(exc.message) from None
    except OSError as exc:
        raise fail(f"cannot write into {directory}: {exc.strerror or exc}") from None
    server, ca = chain.server, chain.ca
    host = tls.host_of(fqdn)
    resolved = {name: str(path.resolve()) for name, path in paths.items()}
    lines = [
        f"Wrote a CA and a server certificate into {directory.resolve()}:",
        f"  {tls.CA_CERT:<11} CA certificate (give it to clients)",
        f"  {tls.CA_KEY:<11} CA private key (keep it offline: it signs certificates clients will trust)",
        f"  {tls.SERVER_CERT:<11} server certificate for {', '.join(tls.subject_names(server))}, "
        f"valid until {server.not_valid_after_utc:%Y-%m-%d}",
        f"  {tls.SERVER_KEY:<11} server private key",
        "",
        "Settings (TOML file; or MOORAGE_FQDN, MOORAGE_TLS_CERT, MOORAGE_TLS_KEY, MOORAGE_TLS_CA):",
        f'  fqdn = "{fqdn}"',
        f'  tls_cert = "{resolved[tls.SERVER_CERT]}"',
        f'  tls_key = "{resolved[tls.SERVER_KEY]}"',
        f'  tls_ca = "{resolved[tls.CA_CERT]}"',
        "",
        *_client_trust(host, resolved[tls.CA_CERT]),
        f"  CA fingerprint (SHA-256): {tls.fingerprint(ca)}",
    ]
    typer.echo("\n".join(lines))


@certs_app.command("check")
def check(
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Check the TLS settings as `moorage serve` does on start, without starting."""
    settings = load_settings(config, data_dir=data_dir)
    if settings.tls_cert is None and settings.tls_key is None:
        typer.echo("TLS is not configured (tls_cert, tls_key): the registry serves plain HTTP.")
        return
    check_serving_certificate(settings)


def _fix(settings: Settings) -> list[str]:
    host = tls.host_of(settings.fqdn) if settings.fqdn else "HOST"
    return [
        "",
        'This is what makes docker, skopeo and oras fail with "x509: certificate signed by unknown authority"',
        'or "x509: certificate is valid for X, not Y". To fix it:',
        "  1. Give the registry a certificate for the name clients use, and set fqdn to that name:",
        f"       moorage certs generate --fqdn {host} [--ip ADDRESS ...]",
        "     then set tls_cert, tls_key and tls_ca to the files it prints.",
        f"  2. Make each client trust the CA that signed it, served at https://{host}/ca:",
        f"       docker: /etc/docker/certs.d/{host}/ca.crt ({host}:PORT when the port is not 443)",
        "       skopeo: --cert-dir DIR (copy: --src-cert-dir / --dest-cert-dir) with DIR/ca.crt",
        f"  3. For testing only: dockerd --insecure-registries {host}, skopeo --tls-verify=false.",
    ]


def check_serving_certificate(settings: Settings) -> None:
    """Refuse to go on (``typer.Exit``) when clients could not use the TLS settings.

    A missing or unreadable file, or a key that is not the certificate's, always refuses.
    A certificate clients would reject (expired, not yet valid, not covering ``fqdn``, not
    for servers, not signed by ``tls_ca``) refuses unless ``tls_allow_invalid`` is set, and
    is then reported as a warning.
    """
    report = tls.check_server_tls(
        settings.tls_cert, settings.tls_key, settings.tls_ca, settings.fqdn, now=utcnow()
    )
    for note in report.notes:
        typer.echo(f"moorage: note: {note}", err=True)
    if report.fatal:
        lines = ["cannot serve HTTPS:", *(f"  - {p.message}" for p in report.fatal)]
        if any(p.kind == "key" for p in report.fatal):
            lines.append(
                "tls_cert and tls_key must be a certificate and its own key, e.g. server.crt and server.key "
                "written together by `moorage certs generate`."
            )
        raise fail("\n".join(lines))
    if report.problems:
        listed = [f"  - {p.message}" for p in report.problems]
        if settings.tls_allow_invalid:
            typer.echo(
                "\n".join(
                    [
                        "moorage: warning: starting with a certificate clients will reject "
                        "(tls_allow_invalid is set):",
                        *listed,
                    ]
                ),
                err=True,
            )
            return
        raise fail(
            "\n".join(
                [
                    "refusing to start: clients will reject the TLS certificate:",
                    *listed,
                    *_fix(settings),
                    "To start anyway for testing, set tls_allow_invalid = true (MOORAGE_TLS_ALLOW_INVALID=true).",
                ]
            )
        )
    if report.certificate is not None:
        cert = report.certificate
        where = (
            f"; clients can fetch its CA at https://{tls.host_of(settings.fqdn)}/ca"
            if (settings.fqdn and settings.tls_ca)
            else ""
        )
        typer.echo(
            f"TLS certificate for {', '.join(report.names)}, valid until "
            f"{cert.not_valid_after_utc:%Y-%m-%d}{where}",
            err=True,
        )
