"""`bridge lint FILE...`: the deploy's own validation, offline (no database, no engine), for designers and
their CI pipelines. `bridge deploy` runs the same first, so a broken file is reported before anything starts.

Exit codes (bridge/cli.py): 0 every file deployable (warnings allowed), 1 a file has errors or cannot be read,
2 a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.bpmn.model import BpmnMetadata, Issue
from bridge.bpmn.reader import parse_bpmn


@dataclass(frozen=True)
class LintResult:
    path: Path
    metadata: BpmnMetadata

    @property
    def ok(self) -> bool:
        return self.metadata.ok

    def as_json(self) -> dict:
        return {"file": str(self.path), "ok": self.ok,
                "processes": [{"key": p.key, "name": p.name, "executable": p.executable,
                               "userTasks": len(p.user_tasks)} for p in self.metadata.processes],
                "issues": [issue.as_json() for issue in self.metadata.issues]}

    def text(self) -> str:
        counts = {"error": len(self.metadata.errors), "warning": len(self.metadata.issues) - len(self.metadata.errors)}
        if self.ok:
            keys = ", ".join(p.key for p in self.metadata.executable_processes) or "no executable process"
            head = f"{self.path}: ok ({keys})" + (f", {counts['warning']} warning(s)" if counts["warning"] else "")
        else:
            head = f"{self.path}: {counts['error']} error(s), {counts['warning']} warning(s); not deployable"
        return "\n".join([head, *(f"  {issue}" for issue in self.metadata.issues)])


def lint_file(path: Path, *, allowed_delegates: Iterable[str] = ()) -> LintResult:
    try:
        data = path.read_bytes()
    except OSError as err:
        unreadable = Issue(str(path), None, None, "UNREADABLE", f"cannot read the file: {err.strerror or err}")
        return LintResult(path, BpmnMetadata(path.name, issues=[unreadable]))
    return LintResult(path, parse_bpmn(data, path.name, allowed_delegates=allowed_delegates))


def report(results: Sequence[LintResult], *, as_json: bool) -> str:
    if as_json:
        return json.dumps({"ok": all(r.ok for r in results), "files": [r.as_json() for r in results]}, indent=2)
    return "\n".join(r.text() for r in results)
