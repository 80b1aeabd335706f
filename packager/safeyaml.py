"""The one YAML loader for user files (manifests, MLproject, python_env.yaml, conda.yaml).

PyYAML's SafeLoader is safe from code execution but not from everything a hostile or unlucky
file can do: aliases expand exponentially ("billion laughs"), deep nesting exhausts the
recursion limit, YAML 1.1 reads `010` as 8 and `1:30` as 90, and a 5 000-digit integer hits
Python's int-conversion limit. This loader refuses aliases and duplicate keys, bounds depth and
size, and resolves scalars by the YAML 1.2 core schema, with integers only in canonical form:
anything else stays a string, for the caller's own check to refuse with a precise message.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node

from packager.errors import InputError, bounded

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_INT_DIGITS = 18  # fits int64; longer digit strings stay strings


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted", event.start_mark)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag not in (None, "!"):
            # An explicit tag (`!!int 010`, `!!python/...`) would bypass the YAML 1.2 resolvers
            # above and reach PyYAML's YAML 1.1 constructors; plain data needs none.
            raise yaml.composer.ComposerError(
                None, None, f"explicit tags ({bounded(event.tag)}) are not accepted",
                event.start_mark)  # type: ignore[arg-type]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {bounded(key)} appears twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _resolver(tag: str, pattern: str, first: str) -> None:
    _Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), integers canonical.
_resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN\0")
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), None)
_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("tag:yaml.org,2002:int", rf"^-?(?:0|[1-9][0-9]{{0,{MAX_INT_DIGITS - 1}}})$",
          "-0123456789")
_resolver("tag:yaml.org,2002:float",
          r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]{1,3})?
               |[-+]?[0-9]+[eE][-+]?[0-9]{1,3}
               |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
          "-+0123456789.")


def load(text: str, *, file: str, fix: str) -> object:
    """Parse `text` (the contents of `file`); any problem is one InputError naming line:col."""
    if len(text) > MAX_BYTES:
        raise InputError(f"is {len(text)} characters long; at most {MAX_BYTES} are accepted",
                         file=file, fix=fix)
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"is not valid YAML{where}: {bounded(problem, quote=False)}",
                         file=file, fix=fix) from None
    except (RecursionError, ValueError, OverflowError, LookupError, AttributeError,
            TypeError) as exc:
        raise InputError(f"cannot be read as YAML: {bounded(str(exc), quote=False)}",
                         file=file, fix=fix) from None
