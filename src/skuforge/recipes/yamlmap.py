"""Line numbers for places in a recipe's YAML, so every problem can be reported as `file:line`.

PyYAML's composer keeps a start mark on every node; `LineMap` indexes them by path (`("steps", 0,
"instruction")`). A template error's `lineno` counts from the template's first line, which for a block
scalar (`instruction: |`) is the line after the key: `content_line` does that arithmetic.
"""

from __future__ import annotations

from typing import Any

import yaml

from skuforge import yamlfile

Loc = tuple[Any, ...]


class LineMap:
    """Node positions of one YAML document; `flat` maps `steps[0].x` back to a top-level `x`."""

    def __init__(self, text: str) -> None:
        self.values: dict[Loc, yaml.Node] = {}
        self.keys: dict[Loc, yaml.Node] = {}
        self.duplicates: list[tuple[int, str]] = []
        self.flat = False
        root = yamlfile.compose(text)
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        self.values[loc] = node
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                child = (*loc, key)
                if child in self.keys:
                    self.duplicates.append(
                        (key_node.start_mark.line + 1, f"duplicate key '{key}' (the last one wins)")
                    )
                self.keys[child] = key_node
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*loc, i))

    def _file_loc(self, loc: Loc) -> Loc:
        if self.flat and loc[:2] == ("steps", 0):
            return loc[2:]
        return loc

    def line(self, loc: Loc) -> int | None:
        """1-based line of the deepest known node on `loc` (the key's line when it is a mapping key)."""
        loc = self._file_loc(tuple(loc))
        while True:
            node = self.keys.get(loc) or self.values.get(loc)
            if node is not None:
                return node.start_mark.line + 1
            if not loc:
                return None
            loc = loc[:-1]

    def content_line(self, loc: Loc, lineno: int) -> int | None:
        """The file line of line `lineno` (1-based) of the text held at `loc`."""
        node = self.values.get(self._file_loc(tuple(loc)))
        if node is None:
            return self.line(loc)
        first = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            first += 1
        return first + lineno - 1

    def label(self, loc: Loc) -> str:
        """`steps[1].rules[0].when` (or `rules[0].when` for a flat recipe)."""
        out = ""
        for part in self._file_loc(tuple(loc)):
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def sections(self, spec: Any, path: str) -> dict[str, str]:
        """`{"step.section": "file:line"}` for the sections a render error may name."""
        out: dict[str, str] = {}
        for i, step in enumerate(spec.steps):
            names = [
                "instruction",
                "ask",
                "input",
                "input.fields",
                "input.with",
                "skip_when",
                "requires",
                "targets.from",
                "targets.allowed",
            ]
            names += [f"requirements[{j}]" for j in range(len(step.requirements))]
            names += [f"rules[{j}]" for j in range(len(step.rules))]
            names += [f"examples[{j}].when" for j in range(len(step.examples))]
            names += [f"variants.{k}" for k in step.variants]
            for name in names:
                loc: Loc = ("steps", i, *_split(name))
                if self._file_loc(loc) in self.keys or self._file_loc(loc) in self.values:
                    out[f"{step.name}.{name}"] = f"{path}:{self.line(loc)}"
        return out


def _split(name: str) -> list[Any]:
    parts: list[Any] = []
    for piece in name.replace("]", "").split("."):
        head, _, index = piece.partition("[")
        parts.append(head)
        if index:
            parts.append(int(index))
    return parts
