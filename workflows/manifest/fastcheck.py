"""A fast "certainly valid" test compiled from the schema, ahead of jsonschema.

jsonschema spends ~150 ms on a 1,000-task manifest (about 5 µs per subschema it
descends into, most of it in ``$ref`` resolution), which is over our 50 ms budget
on its own. Almost every manifest we see is valid, so we compile the schema into
plain Python predicates and only run jsonschema, to explain the errors, when the
predicate says no.

The contract is one-sided: a predicate returns True only if jsonschema would
report no error. Whenever it is unsure (an unsupported keyword, a ``float`` where
an integer is expected, a ``str`` subclass ...) it returns False, which costs
time, never correctness. tests/test_manifest_validation.py checks the contract
against jsonschema on every fixture and on randomly mutated manifests.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

from .schema import compile_pattern

Predicate = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "default"})
_LOCAL_REF = re.compile(r"^#/\$defs/([A-Za-z0-9_]+)$")

# Exact types accepted for each JSON type. Narrower than jsonschema's checker on
# purpose (no bool subclasses, no 2.0 as an integer): narrower only means "unsure".
_EXACT_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _pending(_: Any) -> bool:
    """Stands for a definition while it is being compiled."""
    return False


def _is_number(value: Any) -> bool:
    """Whether jsonschema treats ``value`` as a number (so numeric keywords apply)."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _all(checks: list[Predicate]) -> Predicate:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        # A plain loop: all() over a generator costs a frame per call on this hot path.
        for each in checks:  # noqa: SIM110
            if not each(value):
                return False
        return True

    return check


class _Compiler:
    """Compiles one root schema; ``$ref``s to ``#/$defs/...`` are compiled once each."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Predicate] = {}

    def compile(self, schema: Any) -> Predicate:
        if schema is True:
            return _always
        if not isinstance(schema, Mapping):
            return _never
        checks = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            build = _BUILDERS.get(keyword)
            if build is None:  # a keyword we do not model: let jsonschema decide
                return _never
            checks.append(build(self, value, schema))
        return _all(checks)

    def ref(self, target: str) -> Predicate:
        match = _LOCAL_REF.match(target)
        if match is None or match.group(1) not in self.root.get("$defs", {}):
            return _never
        name = match.group(1)
        if name not in self.refs:
            self.refs[name] = _pending
            self.refs[name] = self.compile(self.root["$defs"][name])
        if self.refs[name] is _pending:  # a $ref inside its own definition
            refs = self.refs
            return lambda value: refs[name](value)
        return self.refs[name]


def _type(compiler: _Compiler, name: Any, schema: Any) -> Predicate:
    exact = _EXACT_TYPES.get(name) if isinstance(name, str) else None
    if exact is None:
        return _never
    return lambda value: type(value) in exact


def _enum(compiler: _Compiler, options: Any, schema: Any) -> Predicate:
    if not all(type(option) is str for option in options):
        return _never
    allowed = frozenset(options)
    return lambda value: type(value) is str and value in allowed


def _pattern(compiler: _Compiler, pattern: str, schema: Any) -> Predicate:
    search = compile_pattern(pattern).search
    return lambda value: not isinstance(value, str) or (type(value) is str and search(value) is not None)


def _length(limit_ok: Callable[[int, int], bool]) -> Callable[..., Predicate]:
    def build(compiler: _Compiler, limit: int, schema: Any) -> Predicate:
        return lambda value: not isinstance(value, str) or limit_ok(len(value), limit)

    return build


def _bound(limit_ok: Callable[[Any, Any], bool]) -> Callable[..., Predicate]:
    def build(compiler: _Compiler, limit: Any, schema: Any) -> Predicate:
        return lambda value: not _is_number(value) or (type(value) in (int, float) and limit_ok(value, limit))

    return build


def _count(limit_ok: Callable[[int, int], bool]) -> Callable[..., Predicate]:
    def build(compiler: _Compiler, limit: int, schema: Any) -> Predicate:
        return lambda value: not isinstance(value, list) or limit_ok(len(value), limit)

    return build


def _size(limit_ok: Callable[[int, int], bool]) -> Callable[..., Predicate]:
    def build(compiler: _Compiler, limit: int, schema: Any) -> Predicate:
        return lambda value: not isinstance(value, dict) or limit_ok(len(value), limit)

    return build


def _unique(compiler: _Compiler, unique: bool, schema: Any) -> Predicate:
    if not unique:
        return _always
    return lambda value: not isinstance(value, list) or _plainly_unique(value)


def _plainly_unique(items: list[Any]) -> bool:
    """True if ``items`` are all str or all int (no bools) and distinct.

    For such lists Python equality is JSON equality; mixed lists (where 1 == 1.0
    but True != 1) are left to jsonschema.
    """
    if not items:
        return True
    kind = type(items[0])
    if kind not in (str, int) or not all(type(item) is kind for item in items):
        return False
    return len(set(items)) == len(items)


def _required(compiler: _Compiler, names: list[str], schema: Any) -> Predicate:
    return lambda value: not isinstance(value, dict) or all(name in value for name in names)


def _properties(compiler: _Compiler, properties: Mapping[str, Any], schema: Any) -> Predicate:
    checks = {name: compiler.compile(sub) for name, sub in properties.items()}

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():
            each = checks.get(key)
            if each is not None and not each(item):
                return False
        return True

    return check


def _additional(compiler: _Compiler, additional: Any, schema: Any) -> Predicate:
    if "patternProperties" in schema:
        return _never
    known = frozenset(schema.get("properties", ()))
    if additional is False:
        return lambda value: not isinstance(value, dict) or value.keys() <= known
    each = compiler.compile(additional)
    return lambda value: (
        not isinstance(value, dict) or all(each(item) for key, item in value.items() if key not in known)
    )


def _property_names(compiler: _Compiler, names: Any, schema: Any) -> Predicate:
    each = compiler.compile(names)
    return lambda value: not isinstance(value, dict) or all(each(key) for key in value)


def _items(compiler: _Compiler, items: Any, schema: Any) -> Predicate:
    if "prefixItems" in schema:
        return _never
    each = compiler.compile(items)
    return lambda value: not isinstance(value, list) or all(each(item) for item in value)


def _ref(compiler: _Compiler, target: str, schema: Any) -> Predicate:
    return compiler.ref(target)


_BUILDERS: dict[str, Callable[[_Compiler, Any, Any], Predicate]] = {
    "type": _type,
    "enum": _enum,
    "pattern": _pattern,
    "minLength": _length(lambda size, limit: size >= limit),
    "maxLength": _length(lambda size, limit: size <= limit),
    "minimum": _bound(lambda number, limit: number >= limit),
    "maximum": _bound(lambda number, limit: number <= limit),
    "minItems": _count(lambda size, limit: size >= limit),
    "maxItems": _count(lambda size, limit: size <= limit),
    "minProperties": _size(lambda size, limit: size >= limit),
    "maxProperties": _size(lambda size, limit: size <= limit),
    "uniqueItems": _unique,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "items": _items,
    "$ref": _ref,
}


def compile_schema(schema: Mapping[str, Any]) -> Predicate:
    """Compile ``schema`` into a predicate that is True only for certainly valid values."""
    return _Compiler(schema).compile(schema)
