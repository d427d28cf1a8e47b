"""The deploy policy: what a BPMN file may make the engine run. BPMN is code: a designer's file carries scripts,
Java classes and expressions that the engine executes with its own rights (a JUEL expression can reach
`''.getClass().forName(...)` and run anything). Nothing runs that this policy does not allow.

Refused, each with its error code, line and element:
  FORBIDDEN_SCRIPT        a <scriptTask>, or a listener of type script (<flowable:script>, type="script")
  FORBIDDEN_CLASS         a flowable:class / activiti:class (a Java class the engine instantiates)
                          not in the site's allowed delegates
  FORBIDDEN_DELEGATE      a flowable:delegateExpression that is not ${bean} with an allowed bean
  FORBIDDEN_SERVICE_TYPE  a service task of a built-in type (flowable:type: shell, http, camel, mule, mail, ...)
  FORBIDDEN_EXPRESSION    an expression (${...} or #{...}, anywhere in the file: conditions, service tasks,
                          listeners, timers, assignments, due dates, priorities) that does more than read
                          variables and their properties, compare and combine them with operators and
                          literals, and call the allowed functions: Flowable's variables:/vars:/var: functions,
                          the read-only methods of `execution` and `task` listed below, and methods of the
                          site's allowed beans

Allowed delegates (BRIDGE_DEPLOY_ALLOWED_DELEGATES): the Java class names and Spring bean names a site's own
code provides; empty by default. The engine enforces the same boundary a second time
(engine/.../ReflectionGuardELResolver.java) for files deployed to it by any other way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

FLOWABLE_NS = "http://flowable.org/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"
_ENGINE_NAMESPACES = (FLOWABLE_NS, ACTIVITI_NS)
_BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

# Flowable's variable functions (org.flowable.common.engine.impl.el.function): read-only.
SAFE_FUNCTIONS = frozenset(f"{ns}:{name}" for ns in ("variables", "vars", "var") for name in (
    "get", "getOrDefault", "exists", "isEmpty", "empty", "isNotEmpty", "notEmpty", "equals", "eq", "notEquals",
    "ne", "contains", "containsAny", "lowerThan", "lessThan", "lt", "lowerThanOrEquals", "lessThanOrEquals", "lte",
    "greaterThan", "gt", "greaterThanOrEquals", "gte", "base64"))
SAFE_METHODS = frozenset({
    ("execution", "getVariable"), ("execution", "hasVariable"), ("execution", "getProcessInstanceBusinessKey"),
    ("execution", "getProcessInstanceId"), ("execution", "getCurrentActivityId"),
    ("task", "getVariable"), ("task", "hasVariable"), ("task", "getAssignee"), ("task", "getOwner"),
})
# Names that reach the JVM's reflection however they are written (a property read calls the getter).
_REFUSED_NAMES = frozenset({"class", "getClass", "classLoader", "getClassLoader", "forName", "newInstance",
                            "getRuntime", "exec", "invoke", "getMethod", "getDeclaredMethod", "getConstructor"})
SERVICE_TYPES_ALLOWED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    element: Any  # the lxml element it was found in (line and id come from it); lxml is untyped
    code: str
    message: str


# -- expressions ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_$][\w$]*)
  | (?P<op>->|==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]=;])
""", re.X)
_KEYWORDS = frozenset({"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "true", "false", "null", "empty",
                       "div", "mod", "instanceof"})


def expressions(text: str) -> Iterator[str]:
    """The bodies of the ${...} and #{...} in `text` (string literals inside may hold braces)."""
    i = 0
    while True:
        start = min((p for p in (text.find("${", i), text.find("#{", i)) if p >= 0), default=-1)
        if start < 0:
            return
        j, quote = start + 2, None
        while j < len(text):
            c = text[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            elif c == "}":
                break
            j += 1
        yield text[start + 2:j]
        i = j + 1


def expression_problem(body: str, *, allowed_beans: frozenset[str] = frozenset()) -> str | None:
    """Why this expression may not run, or None: it may read, compare, combine and call allowed functions."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(body):
        match = _TOKEN.match(body, position)
        if match is None:
            return f"cannot read {body[position:position + 20]!r}"
        position = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))  # type: ignore[arg-type]
    for n, (kind, text) in enumerate(tokens):
        before = tokens[n - 1] if n else ("", "")
        if kind == "op" and text in ("->", "=", ";"):
            return f"{text!r}: lambdas, assignments and statement chains are not allowed"
        if kind == "name" and text in _REFUSED_NAMES:
            return f"{text}: reflection is not allowed"
        if kind == "string" and before == ("op", "[") and text[1:-1] in _REFUSED_NAMES:
            return f"[{text}]: reflection is not allowed"
        if (kind, text) != ("op", "("):
            continue
        if before[0] in ("string", "number") or before in (("op", ")"), ("op", "]")):
            return "calling a method on a value or a result is not allowed"
        if before[0] == "name" and before[1] not in _KEYWORDS:
            problem = _call_problem(tokens, n - 1, allowed_beans)
            if problem:
                return problem
    return None


def _call_problem(tokens: list[tuple[str, str]], name_at: int, allowed_beans: frozenset[str]) -> str | None:
    name = tokens[name_at][1]
    before = tokens[name_at - 1] if name_at else ("", "")
    if before == ("op", ":") and name_at >= 2 and tokens[name_at - 2][0] == "name":
        function = f"{tokens[name_at - 2][1]}:{name}"
        return None if function in SAFE_FUNCTIONS else f"{function}(): not an allowed function"
    if before == ("op", "."):
        base_at = name_at - 2
        base = tokens[base_at] if base_at >= 0 else ("", "")
        chained = base_at >= 1 and tokens[base_at - 1] == ("op", ".")
        if base[0] != "name" or chained:
            return f"{name}(): calling a method on a value or a result is not allowed"
        if (base[1], name) in SAFE_METHODS or base[1] in allowed_beans:
            return None
        return f"{base[1]}.{name}(): not an allowed method (allowed: read-only methods of execution and task, " \
               "and the site's allowed beans)"
    return f"{name}(): not an allowed function"


# -- the file ------------------------------------------------------------------------------------------------

def violations(root, *, allowed_delegates: Iterable[str] = ()) -> list[Violation]:
    """Every policy violation in a parsed BPMN document (an lxml root), in document order."""
    allowed = frozenset(allowed_delegates)
    found: list[Violation] = []
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        local = tag.rpartition("}")[2]
        namespace = tag[1:].partition("}")[0] if tag.startswith("{") else ""
        if local == "scriptTask" and namespace == _BPMN_NS:
            found.append(Violation(element, "FORBIDDEN_SCRIPT", "a scriptTask runs code in the engine: not allowed"))
        elif local == "script" and namespace in _ENGINE_NAMESPACES:
            found.append(Violation(element, "FORBIDDEN_SCRIPT", "a script listener runs code in the engine: "
                                                                "not allowed"))
        for attribute, value in element.items():
            name = attribute.rpartition("}")[2]
            engine_attribute = attribute.startswith("{") and attribute[1:].partition("}")[0] in _ENGINE_NAMESPACES
            if engine_attribute or (name in ("class", "delegateExpression", "type") and local.endswith("Listener")):
                if name == "class" and value.strip() not in allowed:
                    found.append(Violation(element, "FORBIDDEN_CLASS", f"class {value.strip()!r}: a Java class the "
                                           "engine would run; not in BRIDGE_DEPLOY_ALLOWED_DELEGATES"))
                elif name == "delegateExpression" and _bean_of(value) not in allowed:
                    found.append(Violation(element, "FORBIDDEN_DELEGATE", f"delegateExpression {value.strip()!r}: "
                                           "only ${bean} with a bean in BRIDGE_DEPLOY_ALLOWED_DELEGATES"))
                elif name == "type" and local in ("serviceTask", "sendTask") and value not in SERVICE_TYPES_ALLOWED:
                    found.append(Violation(element, "FORBIDDEN_SERVICE_TYPE", f"service task type {value!r} (shell, "
                                           "http, camel, mule, mail, ... reach outside the engine): not allowed"))
                elif name == "type" and local.endswith("Listener") and value == "script":
                    found.append(Violation(element, "FORBIDDEN_SCRIPT", "a script listener runs code in the engine: "
                                                                        "not allowed"))
                if name in ("class", "delegateExpression"):
                    continue
            _check_text(found, element, value, allowed)
        if element.text and local != "documentation":
            _check_text(found, element, element.text, allowed)
    return found


def _bean_of(value: str) -> str | None:
    match = re.fullmatch(r"\s*[$#]\{\s*([A-Za-z_$][\w$]*)\s*}\s*", value)
    return match[1] if match else None


def _check_text(found: list[Violation], element, text: str, allowed: frozenset[str]) -> None:
    if "{" not in text:
        return
    for body in expressions(text):
        problem = expression_problem(body, allowed_beans=allowed)
        if problem:
            found.append(Violation(element, "FORBIDDEN_EXPRESSION", f"expression ${{{body.strip()[:120]}}}: {problem}"))
