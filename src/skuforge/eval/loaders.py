"""Gold attribute data in the formats of the public benchmarks, read into one shape.

- `oa-mine` and `ae-110k` (ExtractGPT's processed files): JSONL with `input` (a title), `category` and
  `target_scores` = `{attribute: {value: 1}}`; AE-110K uses the value "n/a" for an absent attribute.
- `wdc-pave`: JSONL with `id`, `category`, `input_title`, `input_description` and `target_scores` =
  `{attribute: {value: {"pid": [...], "score": 1}}}` or `{attribute: {"n/a": 1}}`.

Every format becomes a `GoldItem`: the product text as a catalog row, and per attribute the list of accepted
values, empty when the attribute is absent ("n/a": predicting a value there is a false positive).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from skuforge.errors import CatalogError

Format = Literal["oa-mine", "ae-110k", "wdc-pave"]
FORMATS: tuple[str, ...] = ("oa-mine", "ae-110k", "wdc-pave")
NA = "n/a"


@dataclass
class GoldItem:
    """One product with its gold attribute values; `attributes[a] == []` means the attribute is absent."""

    id: str
    category: str
    row: dict[str, Any]
    attributes: dict[str, list[str]] = field(default_factory=dict)


def _values(target: dict[str, Any]) -> list[str]:
    return [str(v).strip() for v in target if str(v).strip().casefold() != NA]


def _title_item(data: dict[str, Any], index: int) -> GoldItem:
    row = {"title": data["input"], "category": data.get("category", "")}
    attrs = {name: _values(target) for name, target in data["target_scores"].items()}
    return GoldItem(str(data.get("id", index)), str(data.get("category", "")), row, attrs)


def _wdc_item(data: dict[str, Any], index: int) -> GoldItem:
    row = {
        "title": data.get("input_title") or "",
        "description": data.get("input_description") or "",
        "category": data.get("category", ""),
    }
    attrs = {name: _values(target) for name, target in data["target_scores"].items()}
    return GoldItem(str(data.get("id", index)), str(data.get("category", "")), row, attrs)


def detect_format(first: dict[str, Any]) -> Format:
    """Guess the format from the keys of the first record (oa-mine and ae-110k share one layout)."""
    if "input_title" in first:
        return "wdc-pave"
    if "input" in first and "target_scores" in first:
        return "oa-mine"
    raise CatalogError(
        f"Cannot tell the gold format from the keys {sorted(first)}.",
        "Give --format oa-mine, ae-110k or wdc-pave; the file must be ExtractGPT or WDC-PAVE JSONL.",
    )


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise CatalogError(
                    f"Line {number} of {path} is not valid JSON: {exc}.",
                    "Gold files are JSON Lines: one JSON object per line.",
                ) from exc


def load_gold(path: str | Path, fmt: str | None = None, limit: int | None = None) -> list[GoldItem]:
    """Read a gold file; `fmt` is one of FORMATS or None to detect it from the first record."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"Gold file {path} does not exist.", "Check the path given to --gold.")
    if fmt is not None and fmt not in FORMATS:
        raise CatalogError(f"Unknown gold format '{fmt}'.", f"Use one of: {', '.join(FORMATS)}.")
    items: list[GoldItem] = []
    for number, data in _records(path):
        kind = fmt or detect_format(data)
        try:
            items.append(_wdc_item(data, number) if kind == "wdc-pave" else _title_item(data, number))
        except (KeyError, AttributeError, TypeError) as exc:
            raise CatalogError(
                f"Line {number} of {path} does not look like {kind} gold data (problem with {exc}).",
                "Check --format: oa-mine/ae-110k need input + target_scores; wdc-pave needs input_title.",
            ) from exc
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise CatalogError(
            f"Gold file {path} has no records.", "Give a JSONL file with one product per line."
        )
    return items


def attributes_by_category(items: list[GoldItem]) -> dict[str, list[str]]:
    """Every attribute seen per category, in first-seen order (the schema a model is asked to fill)."""
    out: dict[str, dict[str, None]] = {}
    for item in items:
        out.setdefault(item.category, {}).update(dict.fromkeys(item.attributes))
    return {cat: list(names) for cat, names in out.items()}


def fill_absent(items: list[GoldItem]) -> list[GoldItem]:
    """Give every item all of its category's attributes, absent ([]) where its gold does not list them.

    OA-Mine lists only the attributes a title has; asking the model for the category's whole schema and
    counting an unlisted attribute as "n/a" is how the benchmark is scored (a value there is a false
    positive).
    """
    schema = attributes_by_category(items)
    for item in items:
        item.attributes = {name: item.attributes.get(name, []) for name in schema[item.category]}
    return items
