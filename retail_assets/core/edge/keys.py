"""The embedded default's Ed25519 signing key pair under `<data root>/keys/`, created once even when several
processes (parallel store partitions, a `retail rollback`) ask for it at the same moment.

The private key is published with `os.link` from a complete temp file: the first link wins, every other
creator drops its own key and uses the winner's. The public key is never written from memory: it is derived
from the private key file on disk each time, and rewritten when it does not match. Pure: no Dagster.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from retail_assets.core.atomic import atomic_write_text

PRIVATE_KEY_FILE = "edge_signing.pem"
PUBLIC_KEY_FILE = "edge_signing.pub"


class SigningKeyError(ValueError):
    """The signing key on disk cannot be used; the message says which file and why."""


def ensure_dev_keys(keys_dir: str | os.PathLike) -> tuple[Path, Path]:
    """`(private PEM, public hex)` paths of the dev signing pair: created when missing (private key 0600),
    and the public file always the one derived from the private key that is on disk."""
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    priv, pub = keys_dir / PRIVATE_KEY_FILE, keys_dir / PUBLIC_KEY_FILE
    if not priv.exists():
        _create_private_key_once(priv)
    expected = public_hex_of(priv) + "\n"
    try:
        current = pub.read_text()
    except FileNotFoundError:
        current = None
    if current != expected:  # missing, or left by a creator that lost the race: derive it again
        atomic_write_text(pub, expected)
    return priv, pub


def public_hex_of(private_key_file: str | os.PathLike) -> str:
    """The raw Ed25519 public key, in hex, of a PEM private key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(private_key_file).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{private_key_file} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{private_key_file} is not an Ed25519 key ({type(key).__name__})")
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _create_private_key_once(priv: Path) -> None:
    """Write a new key to a 0600 temp file, fsync it, and link it to `priv`; losing the race is not an error."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=f".{priv.name}.", suffix=".tmp", dir=priv.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, priv)  # atomic, and fails when the name exists: never replaces a published key
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
