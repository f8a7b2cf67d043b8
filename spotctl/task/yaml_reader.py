"""Reading task YAML within bounds, keeping the line of every key.

PyYAML's `safe_load` throws positions away, so documents are composed here with a SafeLoader and
the start line of every key and list item is kept in a `LineMap`. The loader is also where
hostile input is stopped, before any of it is expanded into Python objects:

- the file's size (MAX_FILE_BYTES) is checked before it is read whole;
- control characters (a NUL byte ...) are refused with their line, not as a reader traceback;
- nesting deeper than MAX_YAML_DEPTH is refused while composing (no RecursionError);
- aliases are cheap to write and costly to expand (billion laughs: nine lines, 10^9 nodes), so
  each document's node count *with aliases expanded* is computed on the composed graph, where
  aliases are shared, and refused above MAX_YAML_NODES; a recursive alias is refused too.

YAML 1.1 (PyYAML, and so SkyPilot) keeps only the last of two equal keys, and reads an unquoted
key such as `NO`, `off` or `~` as a boolean or null, not as text. Neither may happen silently, so
every duplicate key is refused with both lines (`YamlDocument.duplicates`), and each key
that is not read as a string is noted in `YamlDocument.key_kinds`, for `task_document` to refuse
where a key is a name (envs, secrets, file_mounts).

Every failure is a TaskError naming the file, the line when known, and the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from spotctl.task.errors import LineMap, Path_, TaskError, combined, format_field
from spotctl.task.limits import MAX_DOCUMENTS, MAX_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What YAML 1.1 (and PyYAML's reader) does not allow in a stream."""


class _LimitError(Exception):
    """A bound was passed; carries the sentence and the line."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class YamlDocument:
    """One `---` document: its plain Python value and where each of its keys was written."""

    data: Any
    lines: LineMap = field(default_factory=dict)
    key_kinds: dict[Path_, str] = field(default_factory=dict)
    """Path of each key that YAML reads as something else than a string -> what it reads, e.g.
    ('envs', 'NO') -> 'a boolean'."""
    duplicates: list[TaskError] = field(default_factory=list)
    """One problem per key given twice in one mapping (the document holds the last value):
    the caller reports them with whatever else it finds in the document."""


try:  # libyaml's parser, ~10x faster than PyYAML's pure-Python one on a large file
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None


if CParser is not None:
    class _Loader(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's event parser (non-recursive, in C) under PyYAML's Python composer, whose
        nodes keep the marks (lines) and which can be bounded below."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
else:  # pragma: no cover
    _Loader = yaml.SafeLoader  # type: ignore[misc, assignment]


class _BoundedLoader(_Loader):
    """A safe loader whose composer refuses nesting deeper than MAX_YAML_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitError(f"nested deeper than {MAX_YAML_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_text(path: Path, source: str) -> str:
    """The file's text, refused before it is read whole when it is larger than MAX_FILE_BYTES."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TaskError("file not found", path=source) from None
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read the file: {exc}", path=source) from None
    return decode_text(raw, source)


def decode_text(raw: bytes, source: str) -> str:
    """A file's bytes (read up to MAX_FILE_BYTES + 1) as text: too large, or not UTF-8 (with the
    line of the first bad byte), is a TaskError naming `source`."""
    if len(raw) > MAX_FILE_BYTES:
        raise TaskError(f"the file is larger than the limit of {MAX_FILE_BYTES} bytes", path=source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TaskError(f"not UTF-8 text (byte {exc.start})", path=source, line=line) from None


def check_text(text: str, source: str | None) -> None:
    """Size and characters, before the YAML parser sees the text."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise TaskError(f"{size} bytes is larger than the limit of {MAX_FILE_BYTES} bytes", path=source)
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise TaskError(f"control character U+{ord(bad.group()):04X} is not allowed in a task file "
                        "(only tab, newline and printable text)", path=source, line=line)


def load_documents(text: str, source: str | None) -> list[YamlDocument]:
    """Parse every document of `text` within the limits, keeping lines; malformed or oversized
    YAML becomes a TaskError. Duplicate keys do not stop the parse: each document lists its own
    (`YamlDocument.duplicates`), and the error that ends a parse comes with those found before."""
    check_text(text, source)
    loader = _BoundedLoader(text)
    docs: list[YamlDocument] = []
    duplicates: list[TaskError] = []
    try:
        while loader.check_node():
            if len(docs) >= MAX_DOCUMENTS:
                raise _LimitError(f"more than {MAX_DOCUMENTS} documents ('---') in one file",
                                  loader.peek_event().start_mark.line + 1)
            node = loader.get_node()
            _check_expansion(node)
            keys = _Keys(source)
            _record_lines(node, (), keys)
            duplicates += keys.duplicates
            docs.append(YamlDocument(loader.construct_document(node), keys.lines, keys.kinds, keys.duplicates))
    except (yaml.YAMLError, _LimitError, ValueError, OverflowError) as exc:
        raise combined([*duplicates, _reading_error(exc, source)]) from None
    finally:
        loader.dispose()
    return docs


def _reading_error(exc: Exception, source: str | None) -> TaskError:
    """The TaskError for what stopped the parse."""
    if isinstance(exc, _LimitError):
        return TaskError(str(exc), path=source, line=exc.line)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark else None
        if "nesting depth" in problem:  # libyaml's own bound (1000) met before ours
            return TaskError(f"nested deeper than {MAX_YAML_DEPTH} levels", path=source, line=line)
        return TaskError(f"not valid YAML: {problem}", path=source, line=line)
    if isinstance(exc, yaml.YAMLError):
        return TaskError(f"not valid YAML: {exc}", path=source)
    # e.g. an integer of more than 4300 digits
    return TaskError(f"a value cannot be read: {str(exc)[:100]}", path=source)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose tree, aliases expanded, has more than MAX_YAML_NODES nodes or is
    deeper than MAX_YAML_DEPTH, or whose aliases loop. Linear in the composed graph: each node's
    expanded (size, height) is computed once, however many aliases point at it."""
    done: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in active:
            raise _LimitError("an alias refers to a node that contains it (recursive)",
                              node.start_mark.line + 1)
        if key not in done:
            if depth > MAX_YAML_DEPTH:
                raise _LimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)",
                                  node.start_mark.line + 1)
            active.add(key)
            size, height = 1, 0
            for child in _children(node):
                child_size, child_height = visit(child, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_YAML_NODES:
                    raise _LimitError(f"more than {MAX_YAML_NODES} values once aliases are expanded",
                                      node.start_mark.line + 1)
            active.discard(key)
            done[key] = (size, height)
        size, height = done[key]
        if depth + height > MAX_YAML_DEPTH:
            raise _LimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)",
                              node.start_mark.line + 1)
        return size, height

    visit(root, 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_KEY_KINDS = {"tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "null (no value)",
              "tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
              "tag:yaml.org,2002:timestamp": "a date"}


class _Keys:
    """What the walk over one document's keys finds: lines, duplicates, keys that are not text."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.lines: LineMap = {}
        self.kinds: dict[Path_, str] = {}
        self.duplicates: list[TaskError] = []
        self._checked: set[int] = set()
        """Mappings already checked for duplicates (an aliased one is reached more than once)."""

    def check_duplicates(self, node: yaml.MappingNode, path: Path_) -> None:
        if id(node) in self._checked:
            return
        self._checked.add(id(node))
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # `<<:` merges; the keys written beside it win over the merged ones, as meant
            line, name = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
            if name not in first:
                first[name] = line
                continue
            lines = f"lines {first[name]} and {line}" if first[name] != line else f"line {line}"
            self.duplicates.append(TaskError(
                f"given twice ({lines}); YAML would keep only the last", path=self.source, line=line,
                field=format_field(path + (str(key_node.value),))))


def _record_lines(node: yaml.Node, path: Path_, keys: _Keys) -> None:
    keys.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys.check_duplicates(node, path)
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (str(key_node.value),)
                keys.lines[sub] = key_node.start_mark.line + 1
                if key_node.tag != _STR_TAG and key_node.tag != _MERGE_TAG:
                    kind = _KEY_KINDS.get(key_node.tag, f"a {key_node.tag.rsplit(':', 1)[-1]}")
                    keys.kinds[sub] = kind
                _record_lines(value_node, sub, keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, path + (i,), keys)
