"""Which audit actions the code can record, found by reading the code (not by running it).

Actions are written in three ways: a literal (``audit.record(db, who, "mail.sent")``), a literal
handed on to a function that records it (``delete(..., action="share.revoke")``,
``start_session(..., "login.link")``), or an f-string over a parameter
(``f"share.{kind}"`` in ``links.event``, called as ``event(db, who, id, "access")``). The first
two are string constants of the form ``<namespace>.<name>``, the namespaces being those of the
literal actions; the third is resolved from the literal arguments of the calls to the function
that holds the f-string.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "relais").rglob("*.py")), *sorted((ROOT / "views").rglob("*.py")), ROOT / "app.py"]
NAME = re.compile(r"[a-z]+(\.[a-z_]+)?")


def _trees():
    return [(path, ast.parse(path.read_text(), str(path))) for path in SOURCES]


def _is_record_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "record"
         and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit")
        or (isinstance(node.func, ast.Name) and node.func.id == "record")
    )


def _fstring_prefix(node: ast.AST) -> tuple[str, str] | None:
    """("share.", "kind") for f"share.{kind}"; None for anything else."""
    if (isinstance(node, ast.JoinedStr) and len(node.values) == 2 and isinstance(node.values[0], ast.Constant)
            and isinstance(node.values[1], ast.FormattedValue) and isinstance(node.values[1].value, ast.Name)):
        return node.values[0].value, node.values[1].value.id
    return None


def templated_values(prefix: str) -> set[str]:
    """The values an f-string action with ``prefix`` takes: {"access", ...} for f"share.{kind}"."""
    return {a[len(prefix):] for a in _resolved(_trees()) if a.startswith(prefix)}


def _resolved(trees) -> set[str]:
    return _scan(trees)[2]


def recorded_actions() -> set[str]:
    literal, handed_on, resolved = _scan(_trees())
    # Only names shaped like an action: "relais.mail" (a logger) is not one, its namespace is not.
    return {a for a in literal | handed_on | resolved if NAME.fullmatch(a)}


def _scan(trees):
    literal: set[str] = set()
    templated: list[tuple[str, str, str]] = []  # (prefix, parameter, function name)
    for _, tree in trees:
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                if _is_record_call(node) and len(node.args) >= 3:
                    action = node.args[2]
                    if isinstance(action, ast.Constant) and isinstance(action.value, str):
                        literal.add(action.value)
                    elif isinstance(action, ast.IfExp):  # "user.activate" if active else "user.deactivate"
                        literal.update(c.value for c in (action.body, action.orelse) if isinstance(c, ast.Constant))
                    elif (found := _fstring_prefix(action)) is not None:
                        templated.append((*found, function.name))
    namespaces = {action.split(".")[0] for action in literal if "." in action}
    handed_on = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value) \
                    and "." in node.value and node.value.split(".")[0] in namespaces:
                handed_on.add(node.value)
    resolved = set()
    for prefix, parameter, function_name in templated:
        position = _parameter_position(trees, function_name, parameter)
        for _, tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _called_name(node) == function_name:
                    value = None
                    if position is not None and len(node.args) > position:
                        value = node.args[position]
                    for keyword in node.keywords:
                        if keyword.arg == parameter:
                            value = keyword.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        resolved.add(prefix + value.value)
    return literal, handed_on, resolved


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _parameter_position(trees, function_name: str, parameter: str) -> int | None:
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function_name:
                names = [a.arg for a in node.args.args]
                if parameter in names:
                    return names.index(parameter)
    return None
