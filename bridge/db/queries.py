"""Named SQL statements kept in .sql files beside this module (one file per concern).

    -- name: upsert_queue
    INSERT INTO ... VALUES (:name, ...)

Each statement is a SQLAlchemy text() with :named parameters; `queries("deploy").upsert_queue`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, text

_DIR = Path(__file__).parent / "queries"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


class Queries:
    def __init__(self, source: str, origin: str) -> None:
        parts = _NAME.split(source)
        self._statements: dict[str, TextClause] = {}
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in self._statements:
                raise ValueError(f"{origin}: query {name} is defined twice")
            self._statements[name] = text(body.strip().rstrip(";"))

    def __getattr__(self, name: str) -> TextClause:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no query named {name}") from None

    def names(self) -> list[str]:
        return sorted(self._statements)


@cache
def queries(concern: str) -> Queries:
    path = _DIR / f"{concern}.sql"
    return Queries(path.read_text(encoding="utf-8"), str(path))
