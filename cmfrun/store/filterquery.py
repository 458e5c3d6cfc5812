"""MLMD filter queries (the subset cmfrun passes) compiled to parameterised SQL.

Supported: comparisons (``= != < <= > >=``), ``LIKE``, ``IN (...)``, ``IS [NOT] NULL``
on ``id``, ``name``, ``uri`` (artifacts), ``type``, ``external_id``,
``last_known_state`` (executions, enum names), ``create_time_since_epoch``,
``last_update_time_since_epoch`` and ``contexts_a.<id|name|type|...>``, joined with
``AND``/``OR``/``NOT`` and parentheses. Anything else is refused with a
:class:`~cmfrun.errors.UsageError` naming it; literals never reach the SQL text.
"""
from __future__ import annotations

import re
from typing import Any, List, Set, Tuple

from cmfrun import errors

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?))"
)
_STATES = {"UNKNOWN": 0, "NEW": 1, "RUNNING": 2, "COMPLETE": 3, "FAILED": 4, "CACHED": 5, "CANCELED": 6}
_COMMON = {"id", "name", "type", "external_id", "create_time_since_epoch", "last_update_time_since_epoch"}
_FIELDS = {"artifact": _COMMON | {"uri"}, "execution": _COMMON | {"last_known_state"}, "context": _COMMON}
_CONTEXT_FIELDS = _COMMON
_LINK = {"artifact": ("Attribution", "artifact_id"), "execution": ("Association", "execution_id")}


class _Parser:
    def __init__(self, text: str, kind: str, alias: str):
        self.text, self.kind, self.alias = text, kind, alias
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.params: List[Any] = []
        self.joins: Set[str] = set()

    def _tokenize(self, text: str) -> List[Tuple[str, str]]:
        out: List[Tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                self._refuse(f"cannot read it at {text[pos:pos + 20]!r}")
            assert m is not None
            kind = m.lastgroup or ""
            out.append((kind, m.group(kind)))
            pos = m.end()
        return out

    def _refuse(self, why: str) -> None:
        raise errors.UsageError(f"filter query {self.text!r} is not supported by the sql store engine: {why}")

    def peek(self) -> Tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")

    def take(self) -> Tuple[str, str]:
        tok = self.peek()
        if not tok[0]:
            self._refuse("it ends too early")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        kind, text = self.peek()
        if kind == "word" and text.upper() == word:
            self.pos += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            self._refuse(f"expected {op!r}")

    # expr := term (OR term)*; term := factor (AND factor)*
    def expr(self) -> str:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def term(self) -> str:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def factor(self) -> str:
        if self.keyword("NOT"):
            return f"(NOT {self.factor()})"
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        return self.comparison()

    def column(self) -> Tuple[str, str]:
        kind, text = self.take()
        if kind != "word":
            self._refuse(f"expected a field name, got {text!r}")
        if "." in text:
            prefix, field = text.split(".", 1)
            if prefix != "contexts_a" or self.kind == "context" or field not in _CONTEXT_FIELDS:
                self._refuse(f"unknown field {text!r}")
            self.joins.add("contexts_a")
            if field == "type":
                self.joins.add("contexts_a_type")
                return "contexts_a_type.`name`", field
            return f"contexts_a.`{field}`", field
        if text not in _FIELDS[self.kind]:
            self._refuse(f"unknown field {text!r}")
        if text == "type":
            self.joins.add("type")
            return "node_type.`name`", text
        return f"{self.alias}.`{text}`", text

    def literal(self, field: str) -> Any:
        kind, text = self.take()
        if kind == "str":
            quote = text[0]
            return text[1:-1].replace(quote * 2, quote)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and field == "last_known_state" and text.upper() in _STATES:
            return _STATES[text.upper()]
        self._refuse(f"expected a value, got {text!r}")
        return None

    def comparison(self) -> str:
        col, field = self.column()
        negate = self.keyword("NOT")
        if self.keyword("LIKE"):
            self.params.append(self.literal(field))
            return f"{col} {'NOT ' if negate else ''}LIKE ?"
        if self.keyword("IN"):
            self.expect("(")
            values = [self.literal(field)]
            while self.peek() == ("op", ","):
                self.take()
                values.append(self.literal(field))
            self.expect(")")
            self.params.extend(values)
            return f"{col} {'NOT ' if negate else ''}IN ({','.join('?' * len(values))})"
        if negate:
            self._refuse("NOT must precede LIKE or IN here")
        if self.keyword("IS"):
            is_not = self.keyword("NOT")
            if not self.keyword("NULL"):
                self._refuse("expected NULL after IS")
            return f"{col} IS {'NOT ' if is_not else ''}NULL"
        kind, op = self.take()
        if kind != "op" or op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self._refuse(f"expected a comparison, got {op!r}")
        self.params.append(self.literal(field))
        return f"{col} {'!=' if op == '<>' else op} ?"


def compile_filter(text: str, kind: str, alias: str) -> Tuple[str, str, List[Any]]:
    """``(joins, where, params)`` for MLMD filter query ``text`` on ``kind`` records
    (``artifact``/``execution``/``context``) whose table is aliased ``alias``."""
    p = _Parser(text, kind, alias)
    where = p.expr()
    if p.pos != len(p.tokens):
        p._refuse(f"unexpected {p.peek()[1]!r}")
    joins: List[str] = []
    if "type" in p.joins:
        joins.append(f"JOIN `Type` node_type ON node_type.`id` = {alias}.`type_id`")
    if "contexts_a" in p.joins:
        table, col = _LINK[kind]
        joins.append(f"JOIN `{table}` ctx_link ON ctx_link.`{col}` = {alias}.`id`")
        joins.append("JOIN `Context` contexts_a ON contexts_a.`id` = ctx_link.`context_id`")
    if "contexts_a_type" in p.joins:
        joins.append("JOIN `Type` contexts_a_type ON contexts_a_type.`id` = contexts_a.`type_id`")
    return " ".join(joins), where, p.params


__all__ = ["compile_filter"]
