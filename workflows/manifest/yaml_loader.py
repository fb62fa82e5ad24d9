"""Safe, bounded YAML loading: parser events straight to JSON-compatible values.

Why not ``yaml.safe_load``? It accepts alias bombs (every later traversal pays
for the expansion), keeps the last of duplicate keys silently, turns dates into
``datetime`` and lets ``1: x`` produce an int key; libyaml's composer also
recurses in C and crashes the process on deep nesting. So we take
the event stream (libyaml's parser is iterative, as is PyYAML's) and build values
with an explicit stack, which lets us refuse, with a line and column:

* more than one document, or none;
* nesting deeper than MAX_DOCUMENT_DEPTH;
* more than MAX_YAML_NODES nodes once aliases are expanded (counted, never
  expanded: an alias adds the memoised size of its anchor), and recursive aliases;
* duplicate keys, non-string keys, tags outside the JSON data model
  (``!!binary``, ``!!set``, ``!custom`` ...), and non-finite floats (``.inf``).

Timestamps are kept as the string written (``2024-01-01`` stays ``"2024-01-01"``).
Merge keys (``<<: *defaults``) are supported; explicit keys win over merged ones.
Values reached through aliases are copied, so the result is a tree: changing one
task's ``with`` can never change another's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.reader import ReaderError

from .constants import MAX_DOCUMENT_DEPTH, MAX_YAML_NODES
from .errors import ManifestSyntaxError

# libyaml's parser is about twenty times faster than PyYAML's; both are safe here
# because we only use their event streams and build values ourselves.
LOADER_CLASS: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YAML_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MERGE, _VALUE = (_YAML_TAG + t for t in ("timestamp", "merge", "value"))
_SEQUENCE_TAGS = frozenset({None, "!", _YAML_TAG + "seq"})
_MAPPING_TAGS = frozenset({None, "!", _YAML_TAG + "map"})
_NO_KEY = object()
_MERGE_KEY = object()


@dataclass
class _Frame:
    """A sequence or mapping still being read."""

    value: list[Any] | dict[str, Any]
    anchor: str | None
    mark: Any
    size: int = 1
    key: Any = _NO_KEY
    merges: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Mark:
    """A 0-based position, for errors that only report a character offset."""

    line: int
    column: int

    @classmethod
    def at(cls, text: str, offset: int) -> _Mark:
        line_start = text.rfind("\n", 0, offset) + 1
        return cls(text.count("\n", 0, offset), offset - line_start)


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _fail(message: str, mark: Any) -> ManifestSyntaxError:
    if mark is None:
        return ManifestSyntaxError(message)
    return ManifestSyntaxError(f"{message} at {_where(mark)}", line=mark.line + 1, column=mark.column + 1)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


class _Builder:
    """Turns one document's events into plain dicts, lists and scalars."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.constructor = SafeConstructor()
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.shares_values = False  # set once an alias is used

    def build(self) -> Any:
        """Read the whole stream; return the single document's value."""
        self._expect(StreamStartEvent)
        if self.loader.check_event(StreamEndEvent):
            raise ManifestSyntaxError("the manifest is empty")
        self._expect(DocumentStartEvent)
        value = self._document()
        self._expect(DocumentEndEvent)
        if not self.loader.check_event(StreamEndEvent):
            event = self.loader.get_event()
            raise _fail("only one YAML document is allowed, found another", event.start_mark)
        return value

    def _expect(self, event_class: type) -> None:
        event = self.loader.get_event()
        if not isinstance(event, event_class):  # the parser guarantees this; be loud if not
            raise _fail(f"unexpected YAML event {type(event).__name__}", event.start_mark)

    def _document(self) -> Any:
        while True:
            event = self.loader.get_event()
            if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                self._open(event)
                continue
            if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                frame = self.stack.pop()
                value, size, mark = self._close(frame), frame.size, frame.mark
            elif isinstance(event, AliasEvent):
                value, size = self._alias(event)
                mark = event.start_mark
            else:
                value, size, mark = self._scalar(event), 1, event.start_mark
            if not self.stack:
                return value
            self._add(self.stack[-1], value, size, mark)

    def _open(self, event: Any) -> None:
        is_mapping = isinstance(event, MappingStartEvent)
        allowed = _MAPPING_TAGS if is_mapping else _SEQUENCE_TAGS
        if event.tag not in allowed:
            raise _fail(f"unsupported YAML tag {_short_tag(event.tag)!r}", event.start_mark)
        if len(self.stack) >= MAX_DOCUMENT_DEPTH:
            raise _fail(f"nesting is deeper than {MAX_DOCUMENT_DEPTH} levels", event.start_mark)
        self._check_anchor(event)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        container: list[Any] | dict[str, Any] = {} if is_mapping else []
        self.stack.append(_Frame(container, event.anchor, event.start_mark))

    def _close(self, frame: _Frame) -> Any:
        value = frame.value
        if frame.merges:
            merged: dict[str, Any] = {}
            for source in reversed(frame.merges):  # the first source listed wins
                merged.update(source)
            merged.update(value)  # explicit keys win over merged ones
            value = merged
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (value, frame.size)
        return value

    def _alias(self, event: Any) -> tuple[Any, int]:
        if event.anchor in self.open_anchors:
            raise _fail(f"recursive alias *{event.anchor} refers to itself", event.start_mark)
        if event.anchor not in self.anchors:
            raise _fail(f"unknown alias *{event.anchor}", event.start_mark)
        self.shares_values = True
        return self.anchors[event.anchor]

    def _check_anchor(self, event: Any) -> None:
        if event.anchor is not None and (event.anchor in self.anchors or event.anchor in self.open_anchors):
            raise _fail(f"duplicate anchor &{event.anchor}", event.start_mark)

    def _scalar(self, event: Any) -> Any:
        self._check_anchor(event)
        value = self._scalar_value(event)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        return value

    def _scalar_value(self, event: Any) -> Any:
        tag = event.tag
        if tag == "!":  # the non-specific tag: YAML says "a string"
            return event.value
        if tag is None:
            tag = self.loader.resolve(ScalarNode, event.value, event.implicit)
        if tag in (_STR, _TIMESTAMP, _VALUE):
            return event.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return SafeConstructor.bool_values[event.value.lower()]
        if tag == _MERGE:
            return _MERGE_KEY
        if tag in (_INT, _FLOAT):
            return self._number(tag, event)
        raise _fail(f"unsupported YAML tag {_short_tag(tag)!r}", event.start_mark)

    def _number(self, tag: str, event: Any) -> int | float:
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            if tag == _INT:
                return self.constructor.construct_yaml_int(node)
            number = self.constructor.construct_yaml_float(node)
        except ValueError as error:  # e.g. !!int "abc", or past int's digit limit
            raise _fail(f"invalid number {event.value!r} ({error})", event.start_mark) from None
        if not math.isfinite(number):
            raise _fail(f"{event.value!r} is not a finite number", event.start_mark)
        return number

    def _add(self, frame: _Frame, value: Any, size: int, mark: Any) -> None:
        frame.size += size
        if frame.size > MAX_YAML_NODES:
            raise _fail(
                f"the document expands to more than {MAX_YAML_NODES} nodes (too many aliases, or an alias bomb)",
                mark,
            )
        if isinstance(frame.value, list):
            frame.value.append(value)
        elif frame.key is _NO_KEY:
            frame.key = self._key(frame.value, value, mark)
        else:
            self._set(frame, frame.value, value, mark)

    def _key(self, mapping: dict[str, Any], key: Any, mark: Any) -> Any:
        if key is _MERGE_KEY:
            return key
        if not isinstance(key, str):
            hint = " (YAML reads it as a boolean; quote it)" if isinstance(key, bool) else ""
            raise _fail(f"mapping keys must be strings, got {key!r}{hint}", mark)
        if key in mapping:
            raise _fail(f"duplicate key {key!r}", mark)
        return key

    def _set(self, frame: _Frame, mapping: dict[str, Any], value: Any, mark: Any) -> None:
        key, frame.key = frame.key, _NO_KEY
        if key is not _MERGE_KEY:
            mapping[key] = value
            return
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise _fail("a merge key '<<' needs a mapping or a list of mappings", mark)
        frame.merges.extend(sources)


def load_yaml(text: str) -> Any:
    """Load exactly one YAML document from ``text`` as JSON-compatible values.

    Raises ManifestSyntaxError for anything unparseable or unsafe (see module doc).
    """
    try:
        loader = LOADER_CLASS(text)  # PyYAML's reader checks characters right here
        try:
            builder = _Builder(loader)
            value = builder.build()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        problem = error.problem or error.context or "unreadable"
        raise _fail(f"invalid YAML: {problem}", error.problem_mark) from None
    except ReaderError as error:  # a character YAML forbids, e.g. NUL
        character = error.character  # libyaml gives a code point, PyYAML a str
        code = ord(character) if isinstance(character, str) else character
        raise _fail(f"invalid YAML: character U+{code:04X} is not allowed", _Mark.at(text, error.position)) from None
    if builder.shares_values:
        # Unshare aliased values. MAX_YAML_NODES bounds the cost, and the C json
        # codec is several times faster than copy.deepcopy.
        value = json.loads(json.dumps(value))
    return value
