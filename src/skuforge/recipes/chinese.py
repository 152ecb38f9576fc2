"""Chinese script conversion of the product data before a model sees it, with OpenCC.

Small models read Simplified Chinese better than Traditional: converting Taiwanese marketplace titles to
Simplified before translating them into English raised chrF on the Shopee pairs (see the README's *Measuring
translation*). A step asks for it in its input section with an expression that gives an OpenCC configuration
name, or none to leave the data as it is:

    input: {fields: targets, opencc: "none if (locale or '')[:2] in ('zh', 'ja') else 't2s'"}

Only text is converted (strings, and strings in lists); terms to keep (the recipe's glossary) are left exactly
as written, so a kept Traditional name still matches the glossary check. The converters come from the
`opencc` package (OpenCC's own Python build, dictionaries inside the wheel; nothing is downloaded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from skuforge.errors import RecipeError, require

CONFIGS = (
    "s2t",
    "t2s",
    "s2tw",
    "tw2s",
    "s2hk",
    "hk2s",
    "s2twp",
    "tw2sp",
    "t2tw",
    "tw2t",
    "t2hk",
    "hk2t",
    "t2jp",
    "jp2t",
)


@lru_cache(maxsize=len(CONFIGS))
def converter(config: str) -> Any:
    """One OpenCC converter per configuration, built once per process."""
    if config not in CONFIGS:
        raise RecipeError(
            f"Unknown OpenCC configuration '{config}'.",
            f"Use one of: {', '.join(CONFIGS)} (t2s: Traditional to Simplified; tw2sp: with Taiwan phrases).",
        )
    opencc = require("opencc", "Chinese script conversion (input: opencc)", "safety")
    return opencc.OpenCC(config)


def convert_text(text: str, config: str, keep: Iterable[str] = ()) -> str:
    """The text converted, except the `keep` terms, which stay exactly as written."""
    terms = sorted({t for t in keep if t and t in text}, key=len, reverse=True)
    if not terms:
        return str(converter(config).convert(text))
    pieces = re.split("(" + "|".join(re.escape(t) for t in terms) + ")", text)
    return "".join(p if p in terms else str(converter(config).convert(p)) if p else p for p in pieces)


def convert(value: Any, config: str | None, keep: Iterable[str] = ()) -> Any:
    """A data value with its Chinese converted: text, or each text of a list; anything else as it is."""
    if not config:
        return value
    keep = list(keep)
    if isinstance(value, str):
        return convert_text(value, config, keep)
    if isinstance(value, list):
        return [convert_text(v, config, keep) if isinstance(v, str) else v for v in value]
    return value
