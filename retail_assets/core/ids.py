"""Identifiers that reach a path or a query are checked against one pattern first."""

from __future__ import annotations

import re

STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class InvalidIdentifier(ValueError):
    """An identifier that must not reach a file path or SQL."""


def validate_store_id(store_id: object) -> str:
    """Return the store id unchanged, or refuse it with a sentence a person can act on."""
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.match(store_id):
        raise InvalidIdentifier(
            f"store id {store_id!r} is not valid: use 1-32 letters, digits, '_' or '-', starting with a letter"
            " or digit (no paths, quotes or spaces)"
        )
    return store_id
