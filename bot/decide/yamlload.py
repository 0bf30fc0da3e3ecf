"""Strict YAML loading: duplicate keys are errors and every mapping remembers its line numbers.

PyYAML silently keeps the last of two equal keys; a rule author who writes ``phrases:`` twice
would lose half the rule without a word. pySigma's loader refuses that; so do we.
"""

from __future__ import annotations

from typing import Any

import yaml


class LocatedDict(dict[str, Any]):
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """Line of ``key`` if known, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    """A list from YAML that knows its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class YamlError(ValueError):
    """A YAML problem with a location."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


# libyaml's C parser when available (rule files are large; the pure-Python one is ~10x slower).
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Base):  # type: ignore[misc]
    """SafeLoader that builds LocatedDict/LocatedList and rejects duplicate keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> LocatedDict:
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise YamlError(line, f"keys must be text, got {key!r}")
        if key in result:
            raise YamlError(
                line,
                f"duplicate key {key!r} (first at line {result.key_lines[key]}); "
                "merge the two entries into one",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _StrictLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
)


def load_yaml(text: str) -> Any:
    """Parse ``text`` strictly; raises YamlError with a line number on any problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise YamlError(line, f"YAML syntax: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, f"YAML: {exc}") from None
