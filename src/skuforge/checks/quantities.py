"""Numbers and quantities in product text: `1-9/16"`, `2,5 cm`, `14.7 x 11.1 x 10.2 inches`, `500毫升`.

The grounding check asks whether every number the model wrote is in the source. That needs numbers parsed as
numbers (so `9/16"` is never found inside `1-9/16"`), units normalised to one base per dimension (so `2.54 cm`
matches `1 in`), and a tolerance that follows the precision the text was written with (`25 cm` is `9.8 in`
rounded, not a new fact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# unit spelling -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {}


def _units(dimension: str, factor: float, *names: str) -> None:
    for name in names:
        UNITS[name.casefold()] = (dimension, factor)


_units("length", 1.0, "mm", "毫米", "millimeter", "millimeters", "millimetre", "millimetres")
_units("length", 10.0, "cm", "厘米", "公分", "centimeter", "centimeters", "centimetre", "centimetres")
_units("length", 1000.0, "m", "米", "meter", "meters", "metre", "metres")
_units("length", 25.4, "in", "inch", "inches", '"', "″", "”", "英寸", "寸")
_units("length", 304.8, "ft", "feet", "foot", "′", "英尺")
_units("mass", 1.0, "g", "克", "gram", "grams", "gramm")
_units("mass", 1000.0, "kg", "公斤", "千克", "kilogram", "kilograms", "kilo", "kilos")
_units("mass", 453.59237, "lb", "lbs", "pound", "pounds", "磅")
_units("mass", 28.349523125, "oz", "ounce", "ounces", "盎司")
_units("mass", 500.0, "斤")
_units("volume", 1.0, "ml", "毫升", "milliliter", "milliliters", "millilitre", "millilitres")
_units("volume", 1000.0, "l", "升", "liter", "liters", "litre", "litres")
_units("volume", 29.5735295625, "fl oz", "fl. oz", "fl.oz", "floz")
_units("power", 1.0, "w", "瓦", "watt", "watts")
_units("power", 1000.0, "kw", "千瓦")
_units("voltage", 1.0, "v", "伏", "volt", "volts")
_units("charge", 1.0, "mah", "毫安")
_units("data", 1.0, "gb", "g字节")
_units("data", 1000.0, "tb")
_units("data", 0.001, "mb")
_units("percent", 1.0, "%", "percent", "per cent")
_units("frequency", 1.0, "hz")
_units("frequency", 1000.0, "khz")
_units("frequency", 1e6, "mhz")
_units("frequency", 1e9, "ghz")

VULGAR = {
    "½": "1/2",
    "⅓": "1/3",
    "⅔": "2/3",
    "¼": "1/4",
    "¾": "3/4",
    "⅕": "1/5",
    "⅛": "1/8",
    "⅜": "3/8",
    "⅝": "5/8",
    "⅞": "7/8",
}
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_NUMBER = (
    r"(?P<whole>\d+)[\s-](?P<num>\d+)/(?P<den>\d+)"  # mixed: 1-9/16, 1 9/16
    r"|(?P<fnum>\d+)/(?P<fden>\d+)(?![\d/])"  # fraction: 9/16
    r"|(?P<thou>\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?![\d,])"  # 1,000.5
    r"|(?<![\d,])(?P<dcomma>\d+,\d{1,2})(?![\d,])"  # 2,5 (decimal comma)
    r"|(?P<plain>\d+(?:\.\d+)?)"
)
_QUANTITY = re.compile(
    rf"(?:(?<![A-Za-z0-9_.\-/])|(?<=\d-)|(?<=[a-z]x))(?:{_NUMBER})(?:[\s-]?(?P<unit>{_UNIT_ALT})(?!(?!x\d)[a-z]))?(?P<tail>(?:(?!x\d)[a-zA-Z])*)",
    re.IGNORECASE,
)
COUNT_WORDS = {"pcs", "pc", "pieces", "piece", "pack", "pk", "ct", "count", "sets", "set", "pairs", "pair"}
_TIMES = re.compile(r"^\s*(?:x|×|\*|by)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """A number as written, its value in the dimension's base unit, and the precision it was written to."""

    text: str
    value: float
    unit: str | None = None
    dimension: str | None = None
    base: float = 0.0
    step: float = 1.0  # half of this, in base units, is the rounding tolerance

    def grounded_by(self, source: Quantity) -> bool:
        """This (output) amount restates `source`: units converted, rounded no finer than it was written.

        The source is taken as exact; the output may round it to its own precision (`25 cm` for `9.84 in`),
        plus 0.2% for conversion factors people round (1 kg = 2.2 lb). A unitless number matches by value.
        """
        if self.dimension and source.dimension:
            if self.dimension != source.dimension:
                return False
            tolerance = self.step / 2 + 0.002 * abs(source.base) + 1e-9
            return abs(self.base - source.base) <= tolerance
        return abs(self.value - source.value) <= 1e-9 * max(abs(self.value), 1.0)

    def describe(self) -> str:
        return self.text.strip()


def _value(m: re.Match[str]) -> tuple[float, float]:
    """(value, step) of the number part of a match: step is 1/denominator or one unit of the last digit."""
    g = m.groupdict()
    if g["whole"]:
        frac = int(g["whole"]) + Fraction(int(g["num"]), int(g["den"]) or 1)
        return float(frac), 1 / (int(g["den"]) or 1)
    if g["fnum"]:
        return int(g["fnum"]) / (int(g["fden"]) or 1), 1 / (int(g["fden"]) or 1)
    raw = (g["thou"] or "").replace(",", "") or (g["dcomma"] or "").replace(",", ".") or g["plain"]
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    return float(raw), 10.0**-decimals


def quantities(text: str) -> list[Quantity]:
    """Every number in `text`, with its unit when it has one; `A x B x C unit` gives each number the unit.

    Numbers inside codes (`YA24`, `PG-210`, `4K`, `3D`) are not quantities and are skipped.
    """
    for sym, frac in VULGAR.items():
        text = re.sub(rf"(\d)\s*{sym}", rf"\1 {frac}", text).replace(sym, frac)
    text = re.sub(r"(?<=\d)\s*[xX×*]\s*(?=\d)", " x ", text)
    found: list[tuple[Quantity, int, int]] = []
    for m in _QUANTITY.finditer(text):
        if m.group("tail") and m.group("tail").casefold() not in COUNT_WORDS:
            continue  # part of a word or code: 4K, 3D, 2nd, 55mmx (unknown suffix)
        value, step = _value(m)
        unit = m.group("unit")
        found.append((_make(m.group(0), value, step, unit), m.start(), m.end()))
    return _spread_units(text, found)


def _make(text: str, value: float, step: float, unit: str | None) -> Quantity:
    if not unit:
        return Quantity(text, value, step=step)
    dimension, factor = UNITS[unit.casefold()]
    return Quantity(text, value, unit, dimension, value * factor, step * factor)


def _spread_units(text: str, found: list[tuple[Quantity, int, int]]) -> list[Quantity]:
    """In `14.7 x 11.1 x 10.2 inches`, the unit written once at the end belongs to every number."""
    out = [q for q, _, _ in found]
    for i in range(len(found) - 2, -1, -1):
        q, _start, end = found[i]
        nxt, nstart, _ = found[i + 1]
        if q.unit is None and out[i + 1].unit and _TIMES.match(text[end:nstart]):
            unit = out[i + 1].unit
            assert unit is not None
            out[i] = _make(q.text + " " + unit, q.value, q.step, unit)
    return out


ZH_DIGITS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
EN_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "dozen": 12,
    "pair": 2,
    "single": 1,
    "double": 2,
    "twin": 2,
}


def spelled_numbers(text: str) -> list[Quantity]:
    """Small numbers written as words (`two`, `pair`, `三件`): a source that says them grounds the digits."""
    words = set(re.findall(r"[a-z]+", text.casefold()))
    found = [Quantity(w, float(v)) for w, v in EN_WORDS.items() if w in words or f"{w}s" in words]
    found += [Quantity(ch, float(v)) for ch, v in ZH_DIGITS.items() if ch in text]
    return found
