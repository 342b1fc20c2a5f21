"""A parser of OTTL's grammar and an evaluator of the subset chainmap generates.

The grammar is transcribed from opentelemetry-collector-contrib ``pkg/ottl/grammar.go``
(commit 055d362592dc8e27f0b91bd0568f1de43d25f518): the lexer rules of ``buildLexer`` in
their order (the first rule matching at a position wins, whitespace elided), strings
unquoted as Go does (``participle.Unquote("String")`` in ``pkg/ottl/parser.go``), and the
participle productions as a backtracking recursive descent (ordered choice):

    parsedStatement   := (editor | converter) ("where" booleanExpression)?        EOF
    booleanExpression := term (OpOr term)*
    term              := booleanValue (OpAnd booleanValue)*
    booleanValue      := OpNot? (comparison | constExpr | "(" booleanExpression ")")
    constExpr         := Boolean | converter
    comparison        := value OpComparison value
    editor            := Lowercase(Uppercase|Lowercase)* "(" (argument ("," argument)*)? ")" key*
    converter         := Uppercase(Uppercase|Lowercase)* "(" (argument ("," argument)*)? ")" key*
    argument          := (Lowercase(Uppercase|Lowercase)* "=")? (value | Uppercase(Uppercase|Lowercase)*)
    value             := "nil" | mathExprLiteral (?! OpAddSub | OpMultDiv) | mathExpression
                       | Bytes | String | Boolean | Uppercase (?! Lowercase) | map | list
    mathExprLiteral   := editor | converter | Float | Int | path
    path              := (Lowercase ".")? field ("." field)*
    field             := Lowercase key*
    key               := "[" (String | Int) "]"
    list              := "[" value* ("," value)* "]"
    map               := "{" (String ":" value ","?)* "}"
    mathExpression    := addSubTerm (OpAddSub addSubTerm)*
    addSubTerm        := mathValue (OpMultDiv mathValue)*
    mathValue         := mathExprLiteral | "(" mathExpression ")"

plus the grammar's custom errors: a converter as the statement, an indexed editor, an
editor used as a value. The evaluator runs the functions the generator uses (set,
merge_maps, IsMatch, Concat, Split, Len) with OTTL's semantics, regexes through ``re2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2

# --- lexer ----------------------------------------------------------------------------------

_RULES = [
    ("Bytes", r"0x[a-fA-F0-9]+"),
    ("Float", r"[-+]?\d*\.\d+([eE][-+]?\d+)?"),
    ("Int", r"[-+]?\d+"),
    ("String", r'"(\\.|[^\\"])*"'),
    ("OpNot", r"\b(not)\b"),
    ("OpOr", r"\b(or)\b"),
    ("OpAnd", r"\b(and)\b"),
    ("OpComparison", r"==|!=|>=|<=|>|<"),
    ("OpAddSub", r"\+|\-"),
    ("OpMultDiv", r"\/|\*"),
    ("Boolean", r"\b(true|false)\b"),
    ("Equal", r"="),
    ("LParen", r"\("),
    ("RParen", r"\)"),
    ("LBrace", r"\{"),
    ("RBrace", r"\}"),
    ("Colon", r"\:"),
    ("Punct", r"[,.\[\]]"),
    ("Uppercase", r"[A-Z][A-Z0-9_]*"),
    ("Lowercase", r"[a-z][a-z0-9_]*"),
    ("whitespace", r"\s+"),
]
_LEXER = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _RULES))


class OTTLSyntaxError(ValueError):
    """The statement is not in OTTL's grammar."""


@dataclass(frozen=True)
class Token:
    type: str
    text: str
    pos: int


def _go_unquote(text: str) -> str:
    """Go's strconv.Unquote of a double-quoted literal (what participle.Unquote calls)."""
    body = text[1:-1]
    if "\n" in body:
        raise OTTLSyntaxError(f"raw newline in string literal {text!r}")
    out, i = [], 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    simple |= {"\\": "\\", '"': '"'}
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        esc = body[i + 1]
        if esc in simple:
            out.append(simple[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise OTTLSyntaxError(f"bad \\{esc} escape in {text!r}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits):
                raise OTTLSyntaxError(f"bad octal escape in {text!r}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise OTTLSyntaxError(f"unknown escape \\{esc} in {text!r}")
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _LEXER.match(text, pos)
        if match is None or match.end() == pos:
            raise OTTLSyntaxError(f"invalid input at {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "whitespace":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


# --- AST ------------------------------------------------------------------------------------


@dataclass
class Call:
    name: str
    args: list[tuple[str | None, Any]]
    keys: list[str | int] = field(default_factory=list)
    editor: bool = False


@dataclass
class Path:
    context: str | None
    fields: list[tuple[str, list[str | int]]]


@dataclass
class Literal:
    value: Any


@dataclass
class Enum:
    name: str


@dataclass
class MapValue:
    items: list[tuple[str, Any]]


@dataclass
class ListValue:
    items: list[Any]


@dataclass
class Math:
    left: Any
    rest: list[tuple[str, Any]]


@dataclass
class Comparison:
    left: Any
    op: str
    right: Any


@dataclass
class Bool:
    negated: bool
    inner: Any


@dataclass
class And:
    terms: list[Any]


@dataclass
class Or:
    terms: list[Any]


@dataclass
class Statement:
    editor: Call
    where: Any | None


class _Fail(Exception):
    pass


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def accept(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.type != kind or (text is not None and token.text != text):
            raise _Fail(f"expected {text or kind}")
        self.i += 1
        return token

    def is_next(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token is not None and token.type == kind and (text is None or token.text == text)

    def choice(self, *alternatives: Any) -> Any:
        start = self.i
        for alternative in alternatives:
            try:
                return alternative()
            except _Fail:
                self.i = start
        raise _Fail("no alternative matched")

    # statement

    def statement(self) -> Statement:
        call = self.choice(self.editor, self.converter)
        if not call.editor:
            raise OTTLSyntaxError(
                f"editor names must start with a lowercase letter but got '{call.name}'"
            )
        if call.keys:
            raise OTTLSyntaxError(
                f"only paths and converters may be indexed, not editors, but got {call.name}"
            )
        where = None
        if self.is_next("Lowercase", "where"):
            self.i += 1
            where = self.boolean_expression()
        if self.peek() is not None:
            raise _Fail(f"unexpected {self.peek()}")
        return Statement(call, where)

    def boolean_expression(self) -> Any:
        terms = [self.term()]
        while self.is_next("OpOr"):
            self.i += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else Or(terms)

    def term(self) -> Any:
        values = [self.boolean_value()]
        while self.is_next("OpAnd"):
            self.i += 1
            values.append(self.boolean_value())
        return values[0] if len(values) == 1 else And(values)

    def boolean_value(self) -> Any:
        negated = False
        if self.is_next("OpNot"):
            self.i += 1
            negated = True
        inner = self.choice(self.comparison, self.const_expr, self.sub_expression)
        return Bool(negated, inner)

    def sub_expression(self) -> Any:
        self.accept("LParen")
        inner = self.boolean_expression()
        self.accept("RParen")
        return inner

    def const_expr(self) -> Any:
        if self.is_next("Boolean"):
            return Literal(self.accept("Boolean").text == "true")
        return self.converter()

    def comparison(self) -> Comparison:
        left = self.value()
        op = self.accept("OpComparison").text
        return Comparison(left, op, self.value())

    # functions

    def _name(self, first: str) -> str:
        parts = [self.accept(first).text]
        while self.is_next("Uppercase") or self.is_next("Lowercase"):
            parts.append(self.accept(self.peek().type).text)  # type: ignore[union-attr]
        return "".join(parts)

    def _call(self, first: str, editor: bool) -> Call:
        name = self._name(first)
        self.accept("LParen")
        args: list[tuple[str | None, Any]] = []
        if not self.is_next("RParen"):
            args.append(self.argument())
            while self.is_next("Punct", ","):
                self.i += 1
                args.append(self.argument())
        self.accept("RParen")
        return Call(name, args, self.keys(), editor)

    def editor(self) -> Call:
        return self._call("Lowercase", True)

    def converter(self) -> Call:
        return self._call("Uppercase", False)

    def argument(self) -> tuple[str | None, Any]:
        start = self.i
        name = None
        try:
            name = self._name("Lowercase")
            self.accept("Equal")
        except _Fail:
            self.i = start
            name = None
        return name, self.choice(self.value, self.function_name)

    def function_name(self) -> Any:
        return Literal(self._name("Uppercase"))

    def keys(self) -> list[str | int]:
        keys: list[str | int] = []
        while self.is_next("Punct", "["):
            self.i += 1
            if self.is_next("String"):
                keys.append(_go_unquote(self.accept("String").text))
            else:
                keys.append(int(self.accept("Int").text))
            self.accept("Punct", "]")
        return keys

    # values

    def value(self) -> Any:
        return self.choice(
            self.nil,
            self.lone_literal,
            self.math_expression,
            lambda: Literal(bytes.fromhex(self.accept("Bytes").text[2:])),
            lambda: Literal(_go_unquote(self.accept("String").text)),
            lambda: Literal(self.accept("Boolean").text == "true"),
            self.enum,
            self.map_value,
            self.list_value,
        )

    def nil(self) -> Any:
        self.accept("Lowercase", "nil")
        return Literal(None)

    def lone_literal(self) -> Any:
        literal = self.math_expr_literal()
        if self.is_next("OpAddSub") or self.is_next("OpMultDiv"):
            raise _Fail("math expression")
        return literal

    def enum(self) -> Enum:
        name = self.accept("Uppercase").text
        if self.is_next("Lowercase"):
            raise _Fail("not an enum")
        return Enum(name)

    def map_value(self) -> MapValue:
        self.accept("LBrace")
        items = []
        while self.is_next("String"):
            key = _go_unquote(self.accept("String").text)
            self.accept("Colon")
            items.append((key, self.value()))
            if self.is_next("Punct", ","):
                self.i += 1
        self.accept("RBrace")
        return MapValue(items)

    def list_value(self) -> ListValue:
        self.accept("Punct", "[")
        items = []
        while not self.is_next("Punct", ",") and not self.is_next("Punct", "]"):
            items.append(self.value())
        while self.is_next("Punct", ","):
            self.i += 1
            items.append(self.value())
        self.accept("Punct", "]")
        return ListValue(items)

    def math_expr_literal(self) -> Any:
        literal = self.choice(
            self.editor,
            self.converter,
            lambda: Literal(float(self.accept("Float").text)),
            lambda: Literal(int(self.accept("Int").text)),
            self.path,
        )
        if isinstance(literal, Call) and literal.editor:
            raise OTTLSyntaxError(
                f"converter names must start with an uppercase letter but got '{literal.name}'"
            )
        return literal

    def path(self) -> Path:
        context = None
        if (
            self.is_next("Lowercase")
            and (nxt := self.peek(1)) is not None
            and (nxt.type, nxt.text) == ("Punct", ".")
            and (after := self.peek(2)) is not None
            and after.type == "Lowercase"
        ):
            context = self.accept("Lowercase").text
            self.accept("Punct", ".")
        fields = [self.path_field()]
        while self.is_next("Punct", "."):
            self.i += 1
            fields.append(self.path_field())
        return Path(context, fields)

    def path_field(self) -> tuple[str, list[str | int]]:
        return self.accept("Lowercase").text, self.keys()

    def math_value(self) -> Any:
        def grouped() -> Any:
            self.accept("LParen")
            inner = self.math_expression()
            self.accept("RParen")
            return inner

        return self.choice(self.math_expr_literal, grouped)

    def add_sub_term(self) -> Any:
        left = self.math_value()
        rest = []
        while self.is_next("OpMultDiv"):
            rest.append((self.accept("OpMultDiv").text, self.math_value()))
        return Math(left, rest) if rest else left

    def math_expression(self) -> Any:
        left = self.add_sub_term()
        rest = []
        while self.is_next("OpAddSub"):
            rest.append((self.accept("OpAddSub").text, self.add_sub_term()))
        return Math(left, rest) if rest else left


def parse_statement(text: str) -> Statement:
    """Parse one statement; raises OTTLSyntaxError when it is not OTTL."""
    parser = _Parser(tokenize(text))
    try:
        return parser.statement()
    except _Fail as exc:
        raise OTTLSyntaxError(f"{text!r}: {exc}") from None


# --- evaluation -----------------------------------------------------------------------------


@dataclass
class SpanRecord:
    """What a span-context statement sees: the span and its resource."""

    resource: dict[str, Any]
    kind: str
    name: str
    attributes: dict[str, Any]


class OTTLRuntimeError(Exception):
    """A statement failed at runtime (error_mode: ignore logs it and goes on)."""


def _as_string(value: Any) -> str | None:
    """IsMatch's conversion: strconv for bools and numbers."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise OTTLRuntimeError(f"IsMatch of {type(value).__name__}")


class Evaluator:
    def __init__(self, span: SpanRecord) -> None:
        self.span = span

    def path_target(self, path: Path) -> tuple[dict[str, Any], str | None]:
        fields = path.fields
        if path.context in ("span", "resource") and fields[0][0] == "attributes":
            attrs = self.span.attributes if path.context == "span" else self.span.resource
            keys = fields[0][1]
            if len(fields) != 1 or len(keys) > 1 or not all(isinstance(k, str) for k in keys):
                raise OTTLRuntimeError(f"unsupported path {path}")
            return attrs, (str(keys[0]) if keys else None)
        raise OTTLRuntimeError(f"unsupported path {path}")

    def get(self, node: Any) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Enum):
            if not node.name.startswith("SPAN_KIND_"):
                raise OTTLRuntimeError(f"unknown enum {node.name}")
            return ("enum", node.name)
        if isinstance(node, Path):
            if node.context == "span" and [f[0] for f in node.fields] == ["name"]:
                return self.span.name
            if node.context == "span" and [f[0] for f in node.fields] == ["kind"]:
                return ("enum", self.span.kind)
            attrs, key = self.path_target(node)
            return attrs if key is None else attrs.get(key)
        if isinstance(node, MapValue):
            return {k: self.get(v) for k, v in node.items}
        if isinstance(node, ListValue):
            return [self.get(v) for v in node.items]
        if isinstance(node, Call) and not node.editor:
            return self.index(self.convert(node), node.keys)
        raise OTTLRuntimeError(f"cannot evaluate {node}")

    def index(self, value: Any, keys: list[str | int]) -> Any:
        for key in keys:
            if isinstance(key, int) and isinstance(value, list):
                if not 0 <= key < len(value):
                    raise OTTLRuntimeError(f"index {key} out of bounds")
                value = value[key]
            elif isinstance(key, str) and isinstance(value, dict):
                value = value[key]
            else:
                raise OTTLRuntimeError(f"cannot index {type(value).__name__} with {key!r}")
        return value

    def convert(self, call: Call) -> Any:
        args = [self.get(value) for _, value in call.args]
        if call.name == "IsMatch" and len(args) == 2:
            target = _as_string(args[0])
            if not isinstance(args[1], str):
                raise OTTLRuntimeError("IsMatch pattern must be a string")
            return target is not None and re2.search(args[1], target) is not None
        if call.name == "Concat" and len(args) == 2:
            values, delimiter = args
            if not isinstance(values, list) or any(not isinstance(v, str) for v in values):
                raise OTTLRuntimeError("Concat of non-strings")
            return delimiter.join(values)
        if call.name == "Split" and len(args) == 2:
            if not isinstance(args[0], str):
                raise OTTLRuntimeError("Split target must be a string")
            return args[0].split(args[1])
        if call.name == "Len" and len(args) == 1 and isinstance(args[0], str | list):
            return len(args[0])
        raise OTTLRuntimeError(f"unsupported converter {call.name}({len(args)} args)")

    def compare(self, node: Comparison) -> bool:
        left, right = self.get(node.left), self.get(node.right)
        if node.op in ("==", "!="):
            same = type(left) is type(right) or (
                isinstance(left, int | float)
                and isinstance(right, int | float)
                and not isinstance(left, bool)
                and not isinstance(right, bool)
            )
            equal = same and left == right
            return equal if node.op == "==" else not equal
        if not (isinstance(left, int) and isinstance(right, int)):
            raise OTTLRuntimeError(f"unsupported comparison {node.op} of {left!r}, {right!r}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[
            node.op
        ]

    def truth(self, node: Any) -> bool:
        if isinstance(node, Or):
            return any(self.truth(t) for t in node.terms)
        if isinstance(node, And):
            return all(self.truth(t) for t in node.terms)
        if isinstance(node, Bool):
            value = self.truth(node.inner)
            return not value if node.negated else value
        if isinstance(node, Comparison):
            return self.compare(node)
        result = self.get(node)
        if not isinstance(result, bool):
            raise OTTLRuntimeError(f"condition is not a boolean: {result!r}")
        return result

    def execute(self, statement: Statement) -> bool:
        """Run one statement; True when its editor ran."""
        if statement.where is not None and not self.truth(statement.where):
            return False
        call = statement.editor
        if call.name == "set" and len(call.args) == 2 and isinstance(call.args[0][1], Path):
            attrs, key = self.path_target(call.args[0][1])
            if key is None:
                raise OTTLRuntimeError("set needs an attribute key")
            attrs[key] = self.get(call.args[1][1])
            return True
        if call.name == "merge_maps" and len(call.args) == 3:
            target = self.get(call.args[0][1])
            source, strategy = self.get(call.args[1][1]), self.get(call.args[2][1])
            if strategy != "upsert" or not isinstance(target, dict):
                raise OTTLRuntimeError("merge_maps supports upsert into a map")
            target.update(source)
            return True
        raise OTTLRuntimeError(f"unsupported editor {call.name}")


def run_statements(statements: list[Statement], span: SpanRecord) -> list[str]:
    """Run a transform processor's statements on one span with ``error_mode: ignore``;
    returns the errors it would log."""
    errors = []
    evaluator = Evaluator(span)
    for statement in statements:
        try:
            evaluator.execute(statement)
        except OTTLRuntimeError as exc:
            errors.append(str(exc))
    return errors
