"""A small PromQL parser for the checks of the alert rules and the dashboard where promtool is absent.

It accepts the language the rules use (selectors with matchers and ranges, functions, aggregations
with by/without, binary operators with their precedence, numbers, strings, parentheses) and raises
PromQLError on anything else; `metric_names` lists the series an expression reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<duration>\[\d+[smhdwy](?::\d+[smhdwy]?)?\])
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){},])
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    )""",
    re.VERBOSE,
)
AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "group",
}
FUNCTIONS = {
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "histogram_quantile",
    "time",
    "vector",
    "scalar",
    "absent",
    "absent_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "changes",
    "resets",
    "label_replace",
    "predict_linear",
    "timestamp",
    "sort",
    "sort_desc",
}
# Binary operators by precedence, lowest first (PromQL: or < and/unless < comparisons < +,- < *,/,% < ^).
LEVELS = [{"or"}, {"and", "unless"}, {"==", "!=", ">", "<", ">=", "<="}, {"+", "-"}, {"*", "/", "%"}, {"^"}]
KEYWORDS = {"by", "without", "bool", "on", "ignoring", "group_left", "group_right", "offset"}


class PromQLError(ValueError):
    pass


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    pos: int = 0
    metrics: set[str] = field(default_factory=set)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token_kind, token = self.peek()
        if (value is not None and token != value) or (kind is not None and token_kind != kind):
            raise PromQLError(f"expected {value or kind} at token {self.pos} ({token!r})")
        self.pos += 1
        return token

    def expr(self, level: int = 0) -> None:
        if level == len(LEVELS):
            return self.unary()
        self.expr(level + 1)
        while self.peek()[1] in LEVELS[level]:
            self.take()
            if self.peek()[1] == "bool":
                self.take()
            if self.peek()[1] in ("on", "ignoring"):
                self.take()
                self.labels()
            if self.peek()[1] in ("group_left", "group_right"):
                self.take()
                if self.peek()[1] == "(":
                    self.labels()
            self.expr(level + 1)
        return None

    def unary(self) -> None:
        if self.peek()[1] in ("-", "+"):
            self.take()
        self.primary()

    def labels(self) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            self.take(kind="ident")
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")

    def args(self) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            self.expr()
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")

    def matchers(self) -> None:
        self.take("{")
        while self.peek()[1] != "}":
            self.take(kind="ident")
            if self.peek()[1] not in ("=", "!=", "=~", "!~"):
                raise PromQLError(f"bad label matcher at token {self.pos}")
            self.take()
            self.take(kind="string")
            if self.peek()[1] == ",":
                self.take(",")
        self.take("}")

    def primary(self) -> None:
        kind, token = self.peek()
        if kind in ("number", "string"):
            self.take()
        elif token == "(":
            self.take("(")
            self.expr()
            self.take(")")
        elif token == "{":
            raise PromQLError("a selector needs a metric name here")
        elif kind == "ident" and token in AGGREGATIONS:
            self.take()
            if self.peek()[1] in ("by", "without"):
                self.take()
                self.labels()
            self.args()
            if self.peek()[1] in ("by", "without"):
                self.take()
                self.labels()
        elif kind == "ident" and token in FUNCTIONS:
            self.take()
            self.args()
        elif kind == "ident" and token not in KEYWORDS and token not in ("or", "and", "unless"):
            if self.tokens[self.pos + 1 : self.pos + 2] == [("op", "(")]:
                raise PromQLError(f"unknown function {token}")
            self.take()
            self.metrics.add(token)
            if self.peek()[1] == "{":
                self.matchers()
        else:
            raise PromQLError(f"unexpected {token!r} at token {self.pos}")
        if self.peek()[0] == "duration":
            self.take()


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise PromQLError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def metric_names(expression: str) -> set[str]:
    """Parse a PromQL expression; the metric names it selects."""
    parser = _Parser(_tokens(expression))
    parser.expr()
    if parser.pos != len(parser.tokens):
        raise PromQLError(f"unexpected {parser.peek()[1]!r} after the expression")
    return parser.metrics
