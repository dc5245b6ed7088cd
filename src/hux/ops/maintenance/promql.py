"""Just enough PromQL structure for the threshold review: find ``<value> <op> <number>`` in an alert.

An alert such as ``ratio5m > 0.1 and ratio1m > 0.1 and rate * 300 >= 5`` is
split at its top-level ``and``/``or``/``unless``; the first part that compares
an expression with a number literal is the alert's threshold (parenthesised
parts are searched depth-first). ``absent(...)`` or ``vector(1)`` have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

_OPS = (">=", "<=", "==", "!=", ">", "<")
_SET_OPS = ("and", "or", "unless")
_NUMBER = re.compile(r"^\s*(?:bool\s+)?([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    expr: str        # the compared value, e.g. "instance:node_memory_utilisation:ratio"
    op: str          # ">", ">=", "<", "<=", "==", "!="
    value: float

    def breached(self, observed: float) -> bool:
        return {
            ">": observed > self.value, ">=": observed >= self.value, "<": observed < self.value,
            "<=": observed <= self.value, "==": observed == self.value, "!=": observed != self.value,
        }[self.op]


def _top_level(expr: str) -> Iterator[tuple[int, str]]:
    """Yield (index, char) for characters outside brackets, braces, parentheses and strings."""
    depth = 0
    quote = ""
    i = 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, ch
        i += 1


def split_set_ops(expr: str) -> list[str]:
    """``a > 1 and on (x) b`` -> ``["a > 1", "on (x) b"]`` (top level only)."""
    cuts = []
    positions = {i for i, _ in _top_level(expr)}
    for match in re.finditer(r"\b(and|or|unless)\b", expr):
        if match.start() in positions:
            cuts.append((match.start(), match.end()))
    parts, start = [], 0
    for begin, end in cuts:
        parts.append(expr[start:begin])
        start = end
    parts.append(expr[start:])
    cleaned = []
    for part in parts:
        part = re.sub(r"^\s*(?:on|ignoring)\s*\([^)]*\)", "", part)
        part = re.sub(r"^\s*group_(?:left|right)\s*(?:\([^)]*\))?", "", part)
        cleaned.append(part.strip())
    return [p for p in cleaned if p]


def _strip_parens(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr
        expr = expr[1:-1].strip()
    return expr


def _comparison(expr: str) -> Threshold | None:
    top = dict(_top_level(expr))
    for i in sorted(top):
        for op in _OPS:
            if expr.startswith(op, i) and all(i + k in top for k in range(len(op))):
                if op in (">", "<") and expr.startswith("=", i + 1):
                    continue
                if op in ("==", "!=", ">=", "<=") or (i == 0 or expr[i - 1] not in "=!<>"):
                    number = _NUMBER.match(expr[i + len(op):])
                    if number:
                        return Threshold(_strip_parens(expr[:i]), op, float(number.group(1)))
                    return None
    return None


def find_threshold(expr: str, _depth: int = 0) -> Threshold | None:
    """The first ``value op number`` of an alert expression, or None."""
    if _depth > 8:
        return None
    for part in split_set_ops(_strip_parens(expr)):
        found = _comparison(part)
        if found:
            return found
        inner = _strip_parens(part)
        if inner != part:
            found = find_threshold(inner, _depth + 1)
            if found:
                return found
    return None
