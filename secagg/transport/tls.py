"""TLS for the secure-aggregation transport (RFC 8446 via the standard :mod:`ssl` module),
and self-signed X.509 certificates (RFC 5280, built with ``cryptography.x509``) for tests,
demos and private deployments that distribute their own CA file.

The server presents a certificate; clients verify it against a CA file (a self-signed
certificate is its own CA) and check the host name. TLS protects the frames (including
the key directory and the survivor sets) from network attackers; it does not replace the
protocol's own end-to-end encryption of shares between clients. The SHA-256 of the
server's certificate is also bound into each client's registration signature
(:func:`certificate_sha256`), so a registration cannot be relayed through another server.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Sequence

from ..errors import ConfigurationError

__all__ = [
    "generate_self_signed",
    "write_self_signed",
    "server_context",
    "client_context",
    "certificate_sha256",
]


def generate_self_signed(
    hosts: Sequence[str] = ("localhost", "127.0.0.1"), *, days: int = 30
) -> tuple[bytes, bytes]:
    """A fresh ECDSA P-256 key and a self-signed certificate valid for ``hosts``.

    ``hosts`` are DNS names or IP addresses placed in the subjectAltName (the first one is
    also the common name). The certificate is a CA (``BasicConstraints ca=True``) so
    clients can load it as their trust anchor. Returns ``(cert_pem, key_pem)``; the key
    is unencrypted PKCS#8 PEM (keep it private). Raises :class:`ConfigurationError` for
    an empty host list or ``days < 1``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hosts = list(hosts)
    if not hosts or days < 1:
        raise ConfigurationError("a certificate needs at least one host name and a validity of >= 1 day")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=int(days)))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_self_signed(
    folder: str | os.PathLike, hosts: Sequence[str] = ("localhost", "127.0.0.1"), *, days: int = 30
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) into ``folder``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = generate_self_signed(hosts, days=days)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return cert_path, key_path


def certificate_sha256(certfile: str | os.PathLike) -> bytes:
    """SHA-256 of the DER encoding of the first (leaf) certificate in a PEM file.

    Raises
    ------
    ConfigurationError
        the file cannot be read or holds no PEM certificate.
    """
    try:
        text = Path(certfile).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the certificate {certfile}: {exc.strerror or exc}") from None
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ConfigurationError(f"{certfile} holds no PEM certificate")
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)])
    except ValueError as exc:
        raise ConfigurationError(f"{certfile}: malformed PEM certificate: {exc}") from None
    return hashlib.sha256(der).digest()


def peer_certificate_sha256(ssl_object) -> bytes | None:
    """SHA-256 of the DER certificate the peer presented on a TLS connection (``None`` if
    it presented none). ``ssl_object`` is ``writer.get_extra_info("ssl_object")``."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return None if der is None else hashlib.sha256(der).digest()


def server_context(certfile: str | os.PathLike, keyfile: str | os.PathLike) -> ssl.SSLContext:
    """Server-side context: TLS 1.2+ with the given certificate chain and private key.

    The SHA-256 of the leaf certificate is kept on the context as
    ``secagg_certificate_sha256`` (the server checks that clients signed their
    registration for this certificate).

    Raises :class:`ConfigurationError` if the files cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(os.fspath(certfile), os.fspath(keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load TLS certificate {certfile} / key {keyfile}: {exc}") from None
    # ssl.SSLContext has no slot for it; the server reads it back with getattr
    ctx.secagg_certificate_sha256 = certificate_sha256(certfile)  # type: ignore[attr-defined]
    return ctx


def client_context(cafile: str | os.PathLike | None = None) -> ssl.SSLContext:
    """Client-side context: TLS 1.2+, server certificate and host name verified against
    ``cafile`` (PEM) or, without it, the system's trust store.

    Raises :class:`ConfigurationError` if ``cafile`` cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        if cafile is None:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ctx.load_verify_locations(cafile=os.fspath(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load TLS CA file {cafile}: {exc}") from None
    return ctx
