"""What a merchandiser sees at once in a filled attribute: a brand that is a product phrase, a pack count or a
model number given as a size, a size taken out of a model name, a material that is a whole description.

These are judgements of one value against the product's own text, used by the `attribute_kind` check:

- `brand_problem`: the brand names the product: three words or more ending in an object of the product
  vocabulary ("Starter Yoga Bag"), or, in Chinese, a product noun the title uses (T恤) or style words (韩版).
- `size_problem`: the size is a pack count ("10 Pack", "Pack of 6", "3件"; a content count such as
  "365 Count" is a bottle's size and passes), a model number ("VSO2000",
  "812DA9184"), or a number that the title uses only inside a model name ("80 mm" for a skate whose title
  says "Kinetic 80 Pro") and never with a unit.
- `material_problem`: the value names a material but goes on into a product description ("Polyester Gym
  Duffel with Mat Pocket"): more than two words besides the material terms.
- `weight_problem`: a weight without a mass in it ("flat", "28码").
- `brand_inside`: a material or colour that carries the product's brand with it ("Industro Stainless
  Steel" for clamps of the brand Industro).

Chinese brands are also judged against the style words of `data/product_nouns.yaml` (韩版, 新款 ...): a brand
made of one is a description.

Each returns the reason in words, or None. They err on the side of passing: a finding sends the item to a
person, so a false alarm costs review time and teaches people to ignore the flag.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from skuforge import yamlfile
from skuforge.checks.grounding import vocabulary

_WORD = re.compile(r"[^\W\d_][\w'’&.+-]*", re.UNICODE)
CJK = re.compile(r"[\u3400-\u9fff]")
"""A Chinese character (Chinese words have no spaces between them)."""
# a number of items in the package: "10 Pack", "6个装"
_PACKED = (
    r"\d+\s*-?\s*(?:packs?|pk|pcs?|pieces?|units?|sets?|pairs?|lots?)\b\.?|\d+\s*(?:件|个|只|支|装|套|双)"
)
_COUNT = re.compile(
    rf"^\s*(?:(?:pack|set|box|case|bundle|lot)\s+of\s+\d+|{_PACKED})\s*$", re.IGNORECASE
)  # how many items come in the package; a content count ("365 Count", "90 粒") is the size of a bottle
_COUNT_AT = re.compile(_PACKED, re.IGNORECASE)  # a number the title writes as a pack count ("10 Pack")
_SIZE_WORD = re.compile(
    r"^(?:\d+(?:[.,/]\d+)?\s*(?:mm|cm|m|in|inch|inches|ft|ml|l|oz|fl\.?\s*oz|g|kg|lb|lbs|gal|qt|"
    r'["\'”]|码|号|寸|英寸|厘米|毫米|米|升|毫升|克|千克)|(?:us|eu|uk|cn|jp)\s*\d.*|x*[sml]|x{0,3}l|\d*xl)$',
    re.IGNORECASE,
)
_MODEL_NUMBER = re.compile(r"^(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$")
_SIZE_ADJECTIVE = re.compile(r"small|smaller|compact|tiny|flat|slim|mini", re.IGNORECASE)
_PACKING = re.compile(
    r"\b(?:folds?|folded|folding|packs?|packed|packing|rolls?|rolled|collapses?|collapsed|stores?|stored)"
    r"(?:\s+(?:up|down|away|flat))?\s+(?:very\s+|really\s+|super\s+)?$",
    re.IGNORECASE,
)  # "folds small": how it packs away, not the size it is
_SIZE_CONTEXT = {"size", "sz", "us", "eu", "uk", "cn", "no", "no.", "#", "尺码", "码"}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.cache
def _vocabulary() -> dict[str, tuple[str, ...]]:
    data = yamlfile.load((Path(__file__).parent / "data" / "product_nouns.yaml").read_text(encoding="utf-8"))
    return {key: tuple(sorted(words, key=len, reverse=True)) for key, words in data.items()}


def _zh_nouns() -> tuple[str, ...]:
    return _vocabulary()["zh"]


def brand_problem(value: str, title: str) -> str | None:
    """Why `value` is not a brand of the product titled `title`, or None.

    Brands often contain the word for their product ("Yogi Tea", "Ellie Shoes", "NOW Supplements"), so a
    Latin brand is judged only when it runs to three words or more and names an object from the product
    vocabulary after its first word ("Starter Yoga Bag"); a Chinese one when it contains a product noun the
    title uses (T恤) or is mostly style words (韩版)."""
    for noun in _zh_nouns():
        if noun in value and noun in title:
            return f"'{value}' names the product type ({noun}), not a brand."
    style = [word for word in _vocabulary()["zh_style"] if word in value]
    if style and len("".join(style)) * 2 >= len(value.strip()):
        return f"'{value}' is a style description ({style[0]}), not a brand."
    words = [w for w in _WORD.findall(value) if not CJK.search(w)]
    if len(words) >= 3:
        for word in words[1:]:
            if _singular(word.casefold()) in _vocabulary()["en"]:
                return f"'{value}' names the product type ({word}), not a brand."
    return None


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def size_problem(value: str, title: str, data: str = "") -> str | None:
    """Why `value` is not a size of the product titled `title` (with all of its text `data`), or None."""
    text = value.strip()
    if _COUNT.match(text) or _counted_in(text, title):
        return f"'{value}' is a pack count, not a size."
    folded = _folded(text, data or title)
    if folded:
        return f"'{value}' says how the product folds or packs ('{folded}'), not its size."
    if _MODEL_NUMBER.match(text) and not _SIZE_WORD.match(text) and len(text) >= 4:
        return f"'{value}' looks like a model number, not a size."
    number = _NUMBER.search(text)
    written = _squash(text) in _squash(title)  # the title's own size phrase ("13-19 mm") is never judged
    if number and title and not written and _model_name_number(number.group(0), title):
        return f"'{value}': {number.group(0)} is part of a model name in the title, not a size."
    return None


def _whole(text: str) -> re.Pattern[str]:
    """`text` as whole words, in any case."""
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)


def _folded(text: str, data: str) -> str | None:
    """The phrase, when `text` is a size word that `data` uses only for how the product folds or packs
    ("folds small for storage", "packs down compact")."""
    if not _SIZE_ADJECTIVE.fullmatch(text):
        return None
    phrases = []
    for use in _whole(text).finditer(data):
        packing = _PACKING.search(data, max(0, use.start() - 48), use.start())  # "collapses down very "
        if packing is None:
            return None
        phrases.append(data[packing.start() : use.end()])
    return phrases[0] if phrases else None


def _counted_in(text: str, title: str) -> bool:
    """True when `text` is a bare number that the title writes only as a pack count ("10" of "10 Pack")."""
    if not _NUMBER.fullmatch(text):
        return False
    uses = [m.start() for m in re.finditer(rf"(?<![\d.]){re.escape(text)}(?![\d.])", title)]
    return bool(uses) and all(_COUNT_AT.match(title, at) for at in uses)


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
        if not before or not before[-1][-1].isalnum():  # "Softgels, 365 Count": a new phrase, not a name
            return False
        word = before[-1].casefold()
        if word in _SIZE_CONTEXT or not word[0].isalpha():
            return False
        found = before[-1][0].isupper()
    return found


def weight_problem(value: str) -> str | None:
    """Why `value` is not a weight, or None: a weight has a mass in it (500 g, 1.1 kg, 2 lb, 250克)."""
    from skuforge.checks.quantities import quantities

    if any(q.dimension == "mass" for q in quantities(value)):
        return None
    return f"'{value}' is not a weight: it has no mass in it (e.g. 500 g)."


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


def brand_inside(value: str, brand: str, kind: str) -> str | None:
    """Why `value`, given for an attribute other than the brand, is not clean: it carries the product's
    `brand` as whole words ("Industro Stainless Steel"), or None (also when the value is the brand itself,
    which the kind of the attribute judges)."""
    name = brand.strip()
    if not name or value.strip().casefold() == name.casefold():
        return None
    # Chinese words have no spaces between them: a substring will do; other brands match whole words
    found = name in value if CJK.search(name) else _whole(name).search(value) is not None
    if found:
        return f"'{value}' includes the brand '{name}'; give the {kind} alone."
    return None
