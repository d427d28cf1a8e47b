"""How deep JSON from outside may nest. The parsers take about a thousand levels, but the code after them
walks values recursively (the intake's number check, jsonb encoding), and Python's recursion limit is of the
same order: a hostile body nesting 1,000 levels was a RecursionError and a 500. Every body is checked
against this bound right after parsing and refused with 400 beyond it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 100


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
