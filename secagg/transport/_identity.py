"""Client identities for authenticated registration: Ed25519 key files, the server's
allow-list, and the bytes a client signs to register (RFC 8032 signatures through
:mod:`secagg.keys`).

Design (see docs/deployment.md, "Registration"): the server proves its identity with TLS
(its certificate, checked by the client against ``--ca``); each client proves its own by
signing a fresh server challenge with a long-term Ed25519 key whose public half is on the
server's allow-list. The signed bytes bind the session id, a per-connection nonce, the
client id, the client's key and the SHA-256 of the server certificate the client saw, so
a signature cannot be replayed on another connection, in another session, or relayed
through another server. The same key then signs the client's protocol messages (the
directory of verification keys is the allow-list), so a client holding the allow-list
can pin the whole directory.

File formats
------------
identity key (``secagg keygen --out FILE``)
    one unencrypted PKCS#8 PEM Ed25519 private key (``-----BEGIN PRIVATE KEY-----``, as
    ``openssl genpkey -algorithm ed25519`` writes), file mode 0600. Loading refuses a file
    that group or others can read.
allow-list (``secagg serve --clients-file FILE``, ``secagg client --peers FILE``)
    UTF-8 text, one client per line: ``<id> <public key: 64 hex digits>``; blank lines and
    everything after ``#`` are ignored. Ids are distinct non-negative integers, keys are
    distinct. ``secagg keygen`` prints the line for its key.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import Mapping

from .. import keys
from ..errors import ConfigurationError, DecodeError, InsecureParameterError

__all__ = [
    "REGISTRATION_LABEL",
    "allow_list_line",
    "load_allow_list",
    "load_identity_key",
    "parse_allow_list",
    "registration_payload",
    "write_identity_key",
]

#: domain-separation label of the registration signature (distinct from every protocol label)
REGISTRATION_LABEL = b"secagg/register/v2"
#: the id field of the signed bytes when the server assigns any free id (open registration)
ANY_ID = 0xFFFFFFFF


def registration_payload(
    session: bytes, nonce: bytes, uid: int | None, verify_key: bytes, server_certificate: bytes | None
) -> bytes:
    """The bytes a client signs to register.

    ``REGISTRATION_LABEL || u8 len(session) || session || nonce (32 B) || u32 id ||
    verify_key (32 B) || u8 len(cert) || SHA-256 of the server certificate (32 B, or empty
    over plain TCP)``. Fixed widths and length prefixes make the encoding injective.

    Parameters
    ----------
    session:
        the session id from the server's CHALLENGE (16..32 bytes).
    nonce:
        the 32-byte per-connection challenge.
    uid:
        the id being registered, or ``None`` when the server assigns one (open
        registration).
    verify_key:
        the client's 32-byte Ed25519 public key.
    server_certificate:
        SHA-256 of the server's DER certificate as the client saw it in the TLS handshake
        (:func:`secagg.transport.tls.certificate_sha256`), or ``None`` over plain TCP.

    Returns
    -------
    bytes

    Raises
    ------
    DecodeError
        a field of the wrong size.
    """
    cert = b"" if server_certificate is None else bytes(server_certificate)
    if not 16 <= len(session) <= 32 or len(nonce) != 32 or len(verify_key) != 32 or len(cert) not in (0, 32):
        raise DecodeError("registration fields have the wrong size (session 16..32, nonce 32, key 32, cert 0/32 B)")
    ident = ANY_ID if uid is None else int(uid)
    if not 0 <= ident <= ANY_ID:
        raise DecodeError(f"client id {uid!r} does not fit the registration encoding")
    return (
        REGISTRATION_LABEL + bytes((len(session),)) + bytes(session) + bytes(nonce)
        + struct.pack(">I", ident) + bytes(verify_key) + bytes((len(cert),)) + cert
    )


# ---------------------------------------------------------------------- allow-list
def allow_list_line(uid: int, public_key: bytes) -> str:
    """The allow-list line ``"<id> <64 hex digits>"`` for ``public_key`` (32 bytes)."""
    if len(public_key) != 32:
        raise ConfigurationError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return f"{int(uid)} {bytes(public_key).hex()}"


def parse_allow_list(text: str, *, source: str = "allow-list") -> dict[int, bytes]:
    """Parse allow-list text into ``{id: 32-byte Ed25519 public key}``.

    Parameters
    ----------
    text:
        the file's content (format in the module docstring).
    source:
        the name used in error messages (e.g. the file path).

    Returns
    -------
    dict[int, bytes]

    Raises
    ------
    ConfigurationError
        a malformed line, a duplicate id or key, or no entry at all; the message names
        ``source`` and the line number.
    """
    entries: dict[int, bytes] = {}
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{source}, line {number}"
        if len(parts) != 2 or not parts[0].isdigit():
            raise ConfigurationError(f"{where}: expected '<id> <public key hex>', got {line[:80]!r}")
        uid = int(parts[0])
        try:
            key = bytes.fromhex(parts[1])
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigurationError(f"{where}: the public key must be 64 hex digits (32 bytes)")
        if uid in entries:
            raise ConfigurationError(f"{where}: id {uid} is listed twice")
        if key in seen:
            raise ConfigurationError(f"{where}: this key is already listed for id {seen[key]}")
        entries[uid] = key
        seen[key] = uid
    if not entries:
        raise ConfigurationError(f"{source} lists no client")
    return entries


def load_allow_list(path: str | os.PathLike) -> dict[int, bytes]:
    """Read an allow-list file (:func:`parse_allow_list`).

    Raises
    ------
    ConfigurationError
        the file cannot be read or is malformed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the allow-list {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_allow_list(text, source=str(path))


# ---------------------------------------------------------------------- key files
def write_identity_key(
    path: str | os.PathLike, signing_key: keys.SigningKey | None = None, *, overwrite: bool = False
) -> keys.SigningKey:
    """Write a client identity key (PKCS#8 PEM, mode 0600) and return it.

    Parameters
    ----------
    path:
        the file to create (its folder is created too).
    signing_key:
        the key to write; default a fresh one from the OS CSPRNG.
    overwrite:
        replace an existing file (default: refuse, so a key is never lost by accident).

    Returns
    -------
    secagg.keys.SigningKey

    Raises
    ------
    ConfigurationError
        the file exists (without ``overwrite``) or cannot be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = signing_key or keys.SigningKey.generate()
    pem = ed25519.Ed25519PrivateKey.from_private_bytes(key.to_bytes()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.chmod(path, 0o600)  # also when overwriting a file created with another mode
            fh.write(pem)
    except FileExistsError:
        raise ConfigurationError(f"{path} already exists; refusing to overwrite a key (pass --force)") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from None
    return key


def load_identity_key(path: str | os.PathLike) -> keys.SigningKey:
    """Read a client identity key written by :func:`write_identity_key` (or by
    ``openssl genpkey -algorithm ed25519``).

    Raises
    ------
    ConfigurationError
        the file cannot be read or holds no unencrypted Ed25519 private key.
    InsecureParameterError
        the file is readable by group or others (POSIX): fix it with ``chmod 600``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = Path(path)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureParameterError(
            f"the key file {path} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key (use secagg keygen)")
    return keys.SigningKey(key)


def key_id(public_key: bytes) -> str:
    """A short printable name of a public key for messages (its first 8 bytes in hex)."""
    return bytes(public_key)[:8].hex()


def check_directory_ids(directory: Mapping[int, bytes], n: int, source: str) -> None:
    """Raise :class:`ConfigurationError` unless every id of ``directory`` is in ``[0, n)``."""
    bad = sorted(u for u in directory if not 0 <= u < n)
    if bad:
        raise ConfigurationError(f"{source} lists ids {bad[:5]} outside [0, {n}) for a session of {n} clients")
