"""What a merchandiser sees at once in a filled attribute: a brand that is a product phrase, a pack count or a
model number given as a size, a size taken out of a model name, a material that is a whole description.

These are judgements of one value against the product's own text, used by the `attribute_kind` check:

- `brand_problem`: the brand contains the product type (the head noun of the title's first phrase, e.g.
  "Bag" in "Starter Yoga Bag, Iron Grey, ..."; for Chinese titles, a product noun of `data/product_nouns.yaml`
  written in the title, e.g. T恤), or it is the title's whole first phrase of three words or more.
- `size_problem`: the size is a pack count ("10 Pack", "Pack of 6", "3件"), a model number ("VSO2000",
  "812DA9184"), or a number that the title uses only inside a model name ("80 mm" for a skate whose title
  says "Kinetic 80 Pro") and never with a unit.
- `material_problem`: the value names a material but goes on into a product description ("Polyester Gym
  Duffel with Mat Pocket"): more than two words besides the material terms.

Each returns the reason in words, or None. They err on the side of passing: a finding sends the item to a
person, so a false alarm costs review time and teaches people to ignore the flag.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from skuforge.checks.grounding import vocabulary

_SEGMENT = re.compile(r"\s*(?:[,，、|;；(（\[]|\s[-–—/]\s)\s*")
_WORD = re.compile(r"[^\W\d_][\w'’&.+-]*", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_NOT_HEAD = {
    "for", "with", "and", "the", "of", "in", "on", "by", "to", "a", "an", "set", "pack", "count", "kit",
    "new", "pro", "plus", "max", "mini", "size", "men's", "women's", "mens", "womens", "kids", "unisex",
}  # fmt: skip
_COUNT = re.compile(
    r"^\s*(?:(?:pack|set|box|case|bundle|lot)\s+of\s+\d+|\d+\s*-?\s*(?:packs?|pk|pcs?|pieces?|count|ct|units?|"
    r"sets?|pairs?|rolls?|bags?|bottles?|capsules?|tablets?|softgels?)\.?|\d+\s*(?:件|个|只|支|装|片|粒|双|套|包|卷|瓶))\s*$",
    re.IGNORECASE,
)
_SIZE_WORD = re.compile(
    r"^(?:\d+(?:[.,/]\d+)?\s*(?:mm|cm|m|in|inch|inches|ft|ml|l|oz|fl\.?\s*oz|g|kg|lb|lbs|gal|qt|"
    r'["\'”]|码|号|寸|英寸|厘米|毫米|米|升|毫升|克|千克)|(?:us|eu|uk|cn|jp)\s*\d.*|x*[sml]|x{0,3}l|\d*xl)$',
    re.IGNORECASE,
)
_MODEL_NUMBER = re.compile(r"^(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$")
_SIZE_CONTEXT = {"size", "sz", "us", "eu", "uk", "cn", "no", "no.", "#", "尺码", "码"}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.cache
def _zh_nouns() -> tuple[str, ...]:
    data = yaml.safe_load((Path(__file__).parent / "data" / "product_nouns.yaml").read_text(encoding="utf-8"))
    return tuple(sorted(data["zh"], key=len, reverse=True))


def first_phrase(title: str) -> str:
    """The title up to its first comma, bracket, bar or spaced dash: usually brand + line + product type."""
    return _SEGMENT.split(title.strip(), maxsplit=1)[0].strip()


def product_words(title: str) -> list[str]:
    """The product type as the title writes it: the head noun of its first phrase (Latin titles) and the
    product nouns it contains (Chinese titles)."""
    words: list[str] = []
    phrase = first_phrase(title)
    latin = [w for w in _WORD.findall(phrase) if not _CJK.search(w)]
    heads = [w for w in latin if w.casefold() not in _NOT_HEAD and len(w) > 2]
    if (
        heads and len(latin) >= 2 and not _CJK.search(phrase)
    ):  # a Chinese title's head is not its last Latin word
        words.append(heads[-1])
    words += [noun for noun in _zh_nouns() if noun in title]
    return words


def brand_problem(value: str, title: str) -> str | None:
    """Why `value` is not a brand of the product titled `title`, or None."""
    if not title.strip():
        return None
    folded = value.casefold()
    for word in product_words(title):
        if _CJK.search(word):
            if word in value:
                return f"'{value}' names the product type ({word}), not a brand."
        elif re.search(rf"(?<![\w]){re.escape(word.casefold())}(?![\w])", folded):
            return f"'{value}' names the product type ({word}), not a brand."
    phrase = first_phrase(title)
    if value.strip() == phrase and len(_WORD.findall(phrase)) >= 3:
        return f"'{value}' is the title's whole first phrase, a description of the product, not a brand."
    return None


def size_problem(value: str, title: str) -> str | None:
    """Why `value` is not a size of the product titled `title`, or None."""
    text = value.strip()
    if _COUNT.match(text):
        return f"'{value}' is a pack count, not a size."
    if _MODEL_NUMBER.match(text) and not _SIZE_WORD.match(text) and len(text) >= 4:
        return f"'{value}' looks like a model number, not a size."
    number = _NUMBER.search(text)
    written = _squash(text) in _squash(title)  # the title's own size phrase ("13-19 mm") is never judged
    if number and title and not written and _model_name_number(number.group(0), title):
        return f"'{value}': {number.group(0)} is part of a model name in the title, not a size."
    return None


def _model_name_number(number: str, title: str) -> bool:
    """True when the title writes `number` only after a name word and never with a unit or a size word."""
    found = False
    for match in re.finditer(rf"(?<![\d.]){re.escape(number)}(?![\d.])", title):
        before = title[: match.start()].rstrip().split()
        after = title[match.end() :].lstrip()
        if _SIZE_WORD.match(number + " " + (after.split()[0] if after.split() else "")):
            return False  # "80 mm", "42 EU": a size with its unit
        if _SIZE_WORD.match(number + (after.split()[0] if after.split() else "")):
            return False
        word = before[-1].casefold().strip(":") if before else ""
        if not word or word in _SIZE_CONTEXT or not word[0].isalpha():
            return False
        found = before[-1][0].isupper()
    return found


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def material_problem(value: str) -> str | None:
    """Why `value`, which names a material, is more than a material, or None."""
    rest = value
    for _material, written in vocabulary().find(value):
        rest = rest.replace(written, " ")
    leftover = [w for w in _WORD.findall(rest) if w.casefold() not in {"and", "with", "blend", "&"}]
    if len(leftover) > 2:
        return f"'{value}' describes the product; a material is only the substance (e.g. polyester)."
    return None
