"""Reading a chains file: what may be read, and YAML that remembers where each value was.

:func:`read_chains_text` reads only a regular file of at most ``CHAINMAP_CHAINS_MAX_BYTES``
(a device like ``/dev/zero`` would be read until memory runs out, a FIFO would block the
reader forever). :func:`load_yaml` parses with libyaml where PyYAML has it (a chains file
of the size limit loads in about a second instead of tens), refuses aliases (a few lines
of ``&a [*b, *b, ...]`` expand to billions of nodes: the "billion laughs") and nesting
deeper than :data:`MAX_YAML_DEPTH` before anything is built, and returns mappings and
lists that know the line of every key and item, for errors that say ``file:line``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from chainmap_otel import config
from chainmap_otel.errors import ChainDefinitionError

__all__ = [
    "INT_RANGE",
    "MAX_YAML_DEPTH",
    "SHOWN_CHARS",
    "LineDict",
    "LineList",
    "joined_surrogates",
    "line_of",
    "load_yaml",
    "max_chains_file_bytes",
    "plain_data",
    "printable",
    "read_chains_text",
    "shown_value",
    "text_problem",
    "type_name",
]

#: Nesting a chains file never needs; deeper documents are refused before Python recursion runs out.
MAX_YAML_DEPTH = 64

_TOO_DEEP = f"nested deeper than {MAX_YAML_DEPTH} levels; chain definitions need far fewer"
_FAST_PARSER: Any
try:  # libyaml's parser, where PyYAML was built with it
    from yaml.cyaml import CParser as _FAST_PARSER  # type: ignore[attr-defined]
except ImportError:
    _FAST_PARSER = None
_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class LineDict(dict[str, Any]):
    """A YAML mapping with the line of the mapping and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A YAML sequence with the line of the sequence and of each item."""

    line: int = 0
    item_lines: list[int]


def line_of(container: Any, key: str | int, default: int) -> int:
    """The line of ``container[key]``; ``default`` for data that did not come from YAML."""
    if isinstance(container, LineDict) and isinstance(key, str):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList) and isinstance(key, int):
        return container.item_lines[key] if key < len(container.item_lines) else container.line
    return default


class _LineConstructor(yaml.constructor.SafeConstructor):
    """Builds :class:`LineDict` and :class:`LineList` from the composed nodes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if not isinstance(key, str):
                key = str(key)
            mapping[key] = self.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        items = LineList(
            self.construct_object(child, deep=True)  # type: ignore[no-untyped-call]
            for child in node.value
        )
        items.line = node.start_mark.line + 1
        items.item_lines = [child.start_mark.line + 1 for child in node.value]
        return items


_LineConstructor.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node),  # type: ignore[attr-defined,arg-type]
)
_LineConstructor.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[attr-defined,arg-type]
)


class _PureLineLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _LineConstructor,
    yaml.resolver.Resolver,
):
    """PyYAML's own parser: slow, but it reads what libyaml refuses (a JSON-style surrogate
    pair escape such as ``"\\ud83d\\uded2"``, which :func:`joined_surrogates` joins)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _LineConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


if _FAST_PARSER is not None:

    class _FastLineLoader(_FAST_PARSER, _LineConstructor, yaml.resolver.Resolver):  # type: ignore[misc,valid-type]
        """libyaml's parser (C) with the line-keeping constructor."""

        def __init__(self, stream: str) -> None:
            _FAST_PARSER.__init__(self, stream)
            _LineConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LOADERS: tuple[Any, ...] = (_FastLineLoader, _PureLineLoader)
else:  # PyYAML built without libyaml
    _LOADERS = (_PureLineLoader,)


def _refused(problem: str, mark: Any) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def _refuse_bombs(text: str, loader: Any) -> None:
    """One pass over the parser's events: no alias, no nesting past ``MAX_YAML_DEPTH``."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise _refused(
                f"YAML aliases (*{event.anchor}) are not allowed in chain definitions; "
                "write the value out",
                event.start_mark,
            )
        if isinstance(event, _OPENS):
            depth += 1
            if depth >= MAX_YAML_DEPTH:
                raise _refused(_TOO_DEEP, event.start_mark)
        elif isinstance(event, _CLOSES):
            depth -= 1


def _load(text: str, loader: Any) -> Any:
    _refuse_bombs(text, loader)
    return yaml.load(text, Loader=loader)


def load_yaml(text: str, source: str) -> Any:
    """The YAML document of ``text``; raises ChainDefinitionError naming ``source:line``."""
    try:
        try:
            return _load(text, _LOADERS[0])
        except yaml.YAMLError as exc:
            if len(_LOADERS) == 1 or "Unicode character escape" not in str(exc):
                raise
            return _load(text, _LOADERS[1])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in reason:  # libyaml's own limit, met while scanning ahead
            reason = _TOO_DEEP
        raise ChainDefinitionError(
            [f"{source}:{line}: not valid YAML: {reason}; fix the syntax at that line"]
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ChainDefinitionError(
            [f"{source}:1: not valid YAML: {exc}; fix the value the message names"]
        ) from None


def max_chains_file_bytes() -> int:
    """``CHAINMAP_CHAINS_MAX_BYTES``: the largest chains file read."""
    return config.env_int(config.CHAINMAP_CHAINS_MAX_BYTES)


def read_chains_text(path: str | Path, max_bytes: int | None = None) -> str:
    """The text of a chains file; raises ChainDefinitionError with one line naming the fix.

    Only a regular file of at most ``max_bytes`` (default ``CHAINMAP_CHAINS_MAX_BYTES``) is
    read: the file is opened without blocking (a FIFO has no writer to wait for), checked
    with ``fstat`` and read with a bound, so neither a device nor a file growing meanwhile
    is read past the limit.
    """
    file = Path(path)
    limit = max_bytes if max_bytes is not None else max_chains_file_bytes()
    setting = config.CHAINMAP_CHAINS_MAX_BYTES.name
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ChainDefinitionError(
            [f"{file}: file not found; set CHAINMAP_CHAINS_FILE to an existing chains YAML"]
        ) from None
    except OSError as exc:
        raise ChainDefinitionError(
            [f"{file}: cannot read the file ({exc.strerror}); check its permissions"]
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ChainDefinitionError(
            [
                f"{file}: not a regular file ({_file_kind(info.st_mode)}); "
                "point it at a chains YAML file"
            ]
        )
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise ChainDefinitionError([_too_large(file, info.st_size, limit, setting)])
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ChainDefinitionError(
                [f"{file}: cannot read the file ({exc.strerror}); check the file and its disk"]
            ) from None
    if len(data) > limit:
        raise ChainDefinitionError([_too_large(file, None, limit, setting)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChainDefinitionError(
            [f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]
        ) from None


def _too_large(file: Path, size: int | None, limit: int, setting: str) -> str:
    what = f"{size:,} bytes" if size is not None else "still growing"
    return (
        f"{file}: too large ({what}; the limit is {limit:,} bytes); a chains file holds "
        f"definitions only: split it, or raise {setting}"
    )


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


# --------------------------------------------------------------------------- text


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` is not storable text (NUL, an unpaired surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character (U+0000); remove it"
    found = _SURROGATE.search(text)
    if found is not None:
        return (
            f"contains an unpaired surrogate (U+{ord(found.group()):04X} at character "
            f"{found.start()}), which is not Unicode text; send valid UTF-8"
        )
    return None


def joined_surrogates(text: str) -> str:
    """``text`` with UTF-16 surrogate pairs (YAML's ``"\\ud83d\\uded2"``) made one character;
    an unpaired one stays, for :func:`text_problem` to name."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def printable(text: str) -> str:
    """``text`` with NUL and unpaired surrogates escaped: an error message is always text."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def plain_data(value: Any) -> Any:
    """YAML-loaded data as plain dicts, lists and scalars, surrogate pairs joined."""
    if isinstance(value, dict):
        return {joined_surrogates(str(k)): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    return joined_surrogates(value) if isinstance(value, str) else value


#: Longest value quoted back in an error message.
SHOWN_CHARS = 80
#: Integers a definition may hold anywhere: what PostgreSQL's bigint and ClickHouse's Int64 hold.
INT_RANGE = range(-(2**63), 2**63)


def shown_value(value: Any) -> str:
    """``repr(value)`` cut to a readable length: errors never print a huge value."""
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT_RANGE:
        return f"<a number of {len(str(abs(value)))} digits>"
    text = repr(value) if not isinstance(value, dict | list) else f"<{type_name(value)}>"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def type_name(value: Any) -> str:
    """What a YAML value is, as an error message says it ("a mapping", "a number", ...)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "nothing" if value is None else type(value).__name__
