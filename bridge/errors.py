"""The project's one base exception. Every error the bridge raises on purpose, to say that something cannot
be done and why, is a BridgeError (beside the standard type that says what kind: ValueError for bad input,
LookupError for something missing, RuntimeError for a part that failed), so a caller that only wants to know
"the bridge refused, here is why" catches one type: `bridge`'s main() does exactly that."""

from __future__ import annotations


class BridgeError(Exception):
    """Something the bridge cannot do; the message says why."""
