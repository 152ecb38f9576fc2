"""Personal data and contact details in product copy: phones, e-mails, URLs, national IDs, card numbers.

Marketplaces reject listings that carry contact details (they route buyers off the platform) and a leaked ID
or card number is a privacy incident. Each detector is a regular expression followed by a validation step,
because product copy is full of digits that are NOT personal data: dimensions ("14.7 x 11.1 x 10.2 in"),
model numbers ("SC-MK-010"), EAN/UPC barcodes (8, 12, 13 or 14 digits), prices ("$99.95"). So:

- phones need a phone's shape: a CN mobile (1[3-9] + 9 digits, grouped 3-4-4 or whole), a US number with its
  separators ("(555) 123-4567", "555.123.4567"), or an international number written with a leading "+";
- card numbers need 15, 16 or 19 digits, a known issuer prefix and a valid Luhn checksum (barcode lengths
  never qualify);
- CN resident IDs need a valid birth date and the ISO 7064 MOD 11-2 check character;
- US SSNs need the dashed or spaced 3-2-4 shape and no never-issued area (000, 666, 9xx);
- e-mails also match the "name at example dot com" spellings; bare domains need a known top-level domain,
  so "Node.js" and "3.5mm" stay clean.

Detectors run on the folded text (full-width digits become ASCII), and report offsets in the original text.
Word boundaries are ASCII-only, so a number right after a CJK character ("电话13812345678") is still found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from skuforge.safety.matcher import Match, TermAction
from skuforge.safety.normalize import Normalized, normalize

KINDS = ("national_id", "credit_card", "email", "url", "phone")

_TLDS = (
    "com|net|org|info|biz|io|co|shop|store|online|site|xyz|top|app|dev|me|tv|cc|"
    "cn|hk|tw|jp|kr|sg|my|th|vn|id|ph|in|uk|de|fr|es|it|nl|ru|br|au|ca|us|eu"
)
_AT = r"(?:\s*@\s*|\s*\(at\)\s*|\s*\[at\]\s*|\s*\{at\}\s*|\s+at\s+)"
_DOT = r"(?:\.|\s*\(dot\)\s*|\s*\[dot\]\s*|\s*\{dot\}\s*|\s+dot\s+)"
_EMAIL = re.compile(
    rf"(?<![0-9a-z_.+-])[a-z0-9][a-z0-9._%+-]*{_AT}[a-z0-9-]+(?:{_DOT}[a-z0-9-]+)*?{_DOT}(?:{_TLDS})(?![a-z0-9])"
)
_URL = re.compile(
    rf"(?:https?://|www\.)[^\s<>\"'，。）)]+|(?<![0-9a-z_@.-])(?:[a-z0-9-]+\.)+(?:{_TLDS})(?:/[^\s<>\"']*)?(?![0-9a-z_.-])"
)
_B, _E = r"(?<![0-9a-z_+])", r"(?![0-9a-z_])"  # ASCII word boundaries: CJK may touch a number
_PHONE = re.compile(
    rf"{_B}(?:(?:\+|00)86[\s-]?)?1[3-9]\d[\s.-]?\d{{4}}[\s.-]?\d{{4}}{_E}"  # CN mobile
    rf"|{_B}(?:\+?1[\s.-]?)?(?:\([2-9]\d{{2}}\)\s?|[2-9]\d{{2}}[\s.-])\d{{3}}[\s.-]\d{{4}}{_E}"  # US
    rf"|{_B}\+\d{{1,3}}[\s.-]?(?:\(\d{{1,4}}\)[\s.-]?)?\d{{1,4}}(?:[\s.-]\d{{2,4}}){{1,4}}{_E}"  # '+' intl
)
_CN_ID = re.compile(
    r"(?<![0-9a-z_])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dx](?![0-9a-z_])"
)
_SSN = re.compile(r"(?<![0-9a-z_-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![0-9a-z_-])")
# Whole, or grouped as cards are printed: 4-4-4-4(-3) or Amex 4-6-5 ("352634-03 352634-05" is two SKUs).
_CARD = re.compile(
    r"(?<![0-9a-z_.-])"
    r"(?:\d{15,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ -])\d{6}\2\d{5})"
    r"(?![0-9a-z_.-])"
)

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10x98765432"


def cn_id_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 check character of an 18-character CN resident ID."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == number[17].lower()


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_valid(number: str) -> bool:
    """A card number: 15/16/19 digits (never a barcode length), a known issuer prefix, a valid Luhn sum."""
    digits = re.sub(r"\D", "", number)
    if len(digits) not in (15, 16, 19):
        return False
    two, four = int(digits[:2]), int(digits[:4])
    issuer = (
        digits[0] == "4"  # Visa
        or 51 <= two <= 55  # Mastercard
        or 2221 <= four <= 2720  # Mastercard 2-series
        or two in (34, 37)  # Amex
        or digits.startswith(("6011", "65", "62", "35"))  # Discover, UnionPay, JCB
    )
    return issuer and luhn_valid(digits)


def _phone_valid(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 8 <= len(digits) <= 15 and (text.startswith(("+", "00")) or len(set(digits)) > 2)


_VALIDATORS: dict[str, list[tuple[re.Pattern[str], Callable[[str], bool]]]] = {
    "national_id": [(_CN_ID, cn_id_valid), (_SSN, lambda s: True)],
    "credit_card": [(_CARD, card_valid)],
    "email": [(_EMAIL, lambda s: True)],
    "url": [(_URL, lambda s: True)],
    "phone": [(_PHONE, _phone_valid)],
}


def find_pii(
    text: str | Normalized,
    actions: Mapping[str, TermAction] | None = None,
    *,
    pack: str = "pii",
) -> list[Match]:
    """Personal data in `text`, one match per finding; a later kind never re-reports an earlier one's span.

    `actions` maps each kind to run (`KINDS`) to 'flag' or 'block'; kinds left out are not run. The default
    runs all kinds and blocks them all.
    """
    norm = text if isinstance(text, Normalized) else normalize(text)
    actions = actions if actions is not None else dict.fromkeys(KINDS, "block")
    folded, index = norm.folded, norm.folded_index
    taken: list[tuple[int, int]] = []
    found: list[Match] = []
    for kind in KINDS:
        if kind not in actions:
            continue
        for pattern, valid in _VALIDATORS[kind]:
            for m in pattern.finditer(folded):
                start, end = m.span()
                if any(s < end and start < e for s, e in taken) or not valid(m.group()):
                    continue
                taken.append((start, end))
                o_start, o_end = norm.span(index, start, end)
                found.append(
                    Match(
                        kind,
                        "pii",
                        actions[kind],
                        pack,
                        o_start,
                        o_end,
                        norm.original[o_start:o_end],
                        m.group(),
                    )
                )
    return sorted(found, key=lambda m: m.start)
