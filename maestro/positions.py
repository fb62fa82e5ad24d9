"""Map JSON pointers into a YAML (or JSON) file back to 1-based line and column.

The manifest package works on plain values and reports problems as JSON pointers; the
file's node tree (``yaml.compose``) still knows where each value was written.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Position = tuple[int, int]


def _tokens(path: str) -> list[str]:
    """The unescaped reference tokens of a JSON pointer (RFC 6901)."""
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def _child(node: Node, token: str) -> tuple[Node, Node | None] | None:
    """The node ``token`` leads to, with its key node when ``node`` is a mapping."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == token:
                return value, key
        return None
    if isinstance(node, SequenceNode) and token.isdigit() and int(token) < len(node.value):
        return node.value[int(token)], None
    return None


def _mark(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def locate(text: str, paths: list[str], *, key_paths: frozenset[str] = frozenset()) -> dict[str, Position]:
    """Line and column of each pointer in ``paths``: of its value, or of its key when the
    value is a block collection (which starts on the next line) or the path is in
    ``key_paths`` (problems about the key itself); as deep as the pointer resolves.

    Only called on text that parse_manifest accepted, so alias bombs are already refused.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return dict.fromkeys(paths, (1, 1))
    if root is None:
        return dict.fromkeys(paths, (1, 1))
    return {path: _locate_one(root, path, at_key=path in key_paths) for path in paths}


def _locate_one(root: Node, path: str, *, at_key: bool) -> Position:
    node: Node = root
    key: Node | None = None
    for token in _tokens(path):
        found = _child(node, token)
        if found is None:
            return _mark(node)
        node, key = found
    block = isinstance(node, MappingNode | SequenceNode) and node.flow_style is not True
    if key is not None and (at_key or block):
        return _mark(key)
    return _mark(node)
