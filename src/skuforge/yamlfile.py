"""YAML in, through libyaml when PyYAML was built with it: the shipped tables (prices, profiles, check data)
and a recipe parse in a tenth of the pure-Python loader's time, which is most of their share of a run's start.

`load` is `yaml.safe_load` and `compose` is `yaml.compose(..., Loader=SafeLoader)`, with the same errors
(`yaml.YAMLError`, with `problem_mark` for the line) and the same marks on nodes.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """The document in `text` as Python values (mappings, lists, strings, numbers, booleans, None)."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, the C one where available


def compose(text: str) -> yaml.Node | None:
    """The document's node tree, with a start mark (line, column) on every node."""
    return yaml.compose(text, Loader=_LOADER)
