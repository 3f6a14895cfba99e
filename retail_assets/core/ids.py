"""Identifiers that reach a path or a query are checked against one pattern first.

Store ids are refused when they do not match (they name partitions, directories and SQL filters, so a person
must fix the reference data). Item ids come from landing files and cannot be refused without losing a
store's sales, so they are never refused: `path_component` turns any of them into one safe file name.
"""

from __future__ import annotations

import hashlib
import re

STORE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # always fullmatch: '$' lets "0001\n" in

# A name that is used as it is: no separator, no leading '.' or '-' (hidden files, command-line flags), no
# trailing '.', at most 64 characters. `fullmatch`, not `match` + '$', so a trailing newline is refused too.
SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-]|[A-Za-z0-9_]")
# Names Windows refuses whatever the extension (the files may be copied off this machine).
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)
ENCODED_PREFIX = "~"  # not allowed in a safe name, so an encoded name never equals a name used as it is


class InvalidIdentifier(ValueError):
    """An identifier that must not reach a file path or SQL."""


def validate_store_id(store_id: object) -> str:
    """Return the store id unchanged, or refuse it with a sentence a person can act on."""
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.fullmatch(store_id):
        raise InvalidIdentifier(
            f"store id {store_id!r} is not valid: use 1-32 letters, digits, '_' or '-', starting with a letter"
            " or digit (no paths, quotes or spaces)"
        )
    return store_id


def path_component(identifier: str) -> str:
    """The one file-name segment for an identifier: the id itself when it is plainly safe, otherwise
    '~' + the SHA-256 of its UTF-8 bytes (fixed length, never a separator, '.' or '..').

    Distinct ids get distinct names: a safe id maps to itself, every other id to a hashed name that cannot
    be safe. The real id is kept inside the file or the manifest that names the file, not in its name.
    """
    if not isinstance(identifier, str):
        raise InvalidIdentifier(f"identifier {identifier!r} is not a string")
    if SAFE_COMPONENT.fullmatch(identifier) and not _RESERVED.fullmatch(identifier):
        return identifier
    return ENCODED_PREFIX + hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).hexdigest()
