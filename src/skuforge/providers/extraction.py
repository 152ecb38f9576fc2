"""What an extraction answer may say, as a byte-level automaton a decoder can follow token by token.

An extraction request (`Request.extract_from`) asks for a flat JSON object whose values are each `null`, a
run of whole words copied from the product text, or one of the values the schema allows (a value it only
offers, besides any string, must be mentioned in the text). The answer is written exactly as `json.dumps`
writes it (`{"Brand": "Folgers", "Roast type": null}`), keys in the schema's order; a key the schema does
not require may be left out, which is how an answer says "not stated" without a wall of nulls.

    shape = AnswerShape.build(schema, ["Folgers Special Roast Medium Roast Ground Coffee, 24.2 Ounces"])
    cursor = Cursor(shape)
    cursor.accepts(b'{"Brand": "Folg')   # True: a prefix of a span
    cursor.accepts(b'{"Brand": "Nes')    # False: not written in the text

Building a shape costs one pass over the text (word boundaries and their byte offsets); there is no grammar
to compile. A `Cursor` is cheap to copy, so a decoder tries candidate tokens on copies and keeps the best
one the shape accepts; `forced()` returns the bytes that must come next (keys, separators), which a decoder
can evaluate in one batch instead of token by token.

Word boundaries: a value starts at a letter, digit or CJK character that begins a word (letters and digits
written together are one word, `250mg` or `KF94`; every CJK character stands alone) and ends where such a
word ends, or after a closing mark such as `%`, `)` or `®`. A number is never cut from the unit written
onto it: of 11,129 values in the OA-Mine and AE-110K training sets, 7 start or end inside such a word, and
275 are one (`250mg`, not `250`). Texts are kept apart, so a value never runs from the title
into the description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CLOSERS = frozenset("%)+'\"®™°†*")
"""Characters a value may end with besides letters and digits (`100%`, `(Pack of 2)`, `Centrum®`)."""
_QUOTE = 0x22
_GAP = b"\x00"  # between texts: never part of a value, so no value spans two texts


def _group(char: str) -> str:
    """'c' CJK, 'w' other letter or digit, 's' space, 'p' anything else."""
    code = ord(char)
    if 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x3040 <= code <= 0x30FF:
        return "c"
    if char.isalnum():
        return "w"
    return "s" if char.isspace() else "p"


def _escaped(char: str) -> bytes:
    return json.dumps(char, ensure_ascii=False)[1:-1].encode("utf-8")


@dataclass(frozen=True)
class Source:
    """The product texts as one JSON-escaped byte string, with the offsets where a value may start and end."""

    data: bytes
    starts: tuple[int, ...]
    ends: frozenset[int]

    @classmethod
    def of(cls, texts: Sequence[str]) -> Source:
        data = bytearray()
        starts: list[int] = []
        ends: set[int] = set()
        for text in texts:
            if data:
                data += _GAP
            groups = [_group(c) for c in text]
            for i, char in enumerate(text):
                group = groups[i]
                word = group in "wc"
                if word and (i == 0 or group == "c" or groups[i - 1] != group):
                    starts.append(len(data))
                data += _escaped(char)
                last = i + 1 == len(text)
                if (word or char in CLOSERS) and (last or group == "c" or groups[i + 1] != group):
                    ends.add(len(data))
        return cls(bytes(data), tuple(starts), frozenset(ends))


@dataclass(frozen=True)
class Slot:
    """One key of the answer: its JSON-escaped name, whether it must appear, and what its value may be."""

    key: bytes
    required: bool
    allowed: tuple[bytes, ...]
    spans: bool


@dataclass(frozen=True)
class AnswerShape:
    """The keys of an extraction answer, in order, and the source its free values are copied from."""

    slots: tuple[Slot, ...]
    source: Source

    @classmethod
    def build(cls, schema: dict[str, Any] | None, texts: Sequence[str]) -> AnswerShape | None:
        """The shape for a flat object schema whose values are strings (or null); None for any other schema,
        which the caller then decodes some other way."""
        if not schema or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            return None
        required = set(schema.get("required") or [])
        mentioned = _mentioned_in(texts)
        slots = []
        for name, prop in schema["properties"].items():
            slot = _slot(str(name), prop, str(name) in required, mentioned)
            if slot is None:
                return None
            slots.append(slot)
        return cls(tuple(slots), Source.of([t for t in texts if t]))


def _slot(name: str, prop: Any, required: bool, mentioned: Callable[[str], bool]) -> Slot | None:
    """A string-or-null property as a slot: `enum` (closed), `anyOf` of an enum and a string (offered
    values the text mentions, or a span), or a plain string (a span). Anything else cannot be decoded as an
    extraction."""
    if not isinstance(prop, dict):
        return None
    key = json.dumps(name, ensure_ascii=False).encode("utf-8")
    if "enum" in prop:
        values = prop["enum"]
        if not all(v is None or isinstance(v, str) for v in values):
            return None
        return Slot(key, required, _encoded(values), spans=False)
    if "anyOf" in prop:
        offered: list[Any] = []
        spans = False
        for branch in prop["anyOf"]:
            if not isinstance(branch, dict):
                return None
            if "enum" in branch:
                offered += branch["enum"]
            elif _types(branch) <= {"string", "null"}:
                spans = spans or "string" in _types(branch)
            else:
                return None
        said = [v for v in offered if isinstance(v, str) and mentioned(v)]
        return Slot(key, required, _encoded(said), spans)
    if not _types(prop) or not _types(prop) <= {"string", "null"} or set(prop) - {"type", "description"}:
        return None
    return Slot(key, required, (), spans="string" in _types(prop))


def _mentioned_in(texts: Sequence[str]) -> Callable[[str], bool]:
    """Whether the texts mention a value: its words in a row, in any case, with or without an apostrophe or a
    final `s` (`MENS` and `men's` mention `Men's`). A value with a Chinese character must appear as written.
    An offered value the text does not mention is not written: `Plastic` is a common fingerboard material,
    but not of a guitar whose title says `Rosewood Fingerboard`."""
    raw = " ".join(t for t in texts if t).casefold()
    words = f" {' '.join(_words(raw))} "

    def mentioned(value: str) -> bool:
        if any(_group(char) == "c" for char in value):
            return value.casefold() in raw
        wanted = _words(value.casefold())
        return bool(wanted) and f" {' '.join(wanted)} " in words

    return mentioned


_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    found = _WORD.findall(text.replace("'", "").replace("\u2019", ""))
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found]


def _types(prop: dict[str, Any]) -> set[str]:
    kind = prop.get("type")
    return set(kind) if isinstance(kind, list) else ({kind} if isinstance(kind, str) else set())


def _encoded(values: Sequence[Any]) -> tuple[bytes, ...]:
    return tuple(
        json.dumps(v, ensure_ascii=False)[1:-1].encode("utf-8") for v in values if isinstance(v, str)
    )


# Phases of the cursor.
_CHOOSE, _VALUE, _DONE = 0, 1, 2


class Cursor:
    """Where an answer is in its shape, advanced byte by byte; `clone()` before trying a candidate.

    In `_CHOOSE` the next bytes are one of a few literals (the next key with its separator, or the closing
    brace; after a key, ` null` or ` "`); in `_VALUE` they are a string value being copied.
    """

    __slots__ = ("shape", "phase", "slot", "options", "offset", "value", "live", "offered")

    def __init__(self, shape: AnswerShape) -> None:
        self.shape = shape
        self.phase = _CHOOSE
        self.slot = -1  # index of the last key written
        self.options: list[tuple[bytes, int]] = []  # (literal, what it leads to); see _after
        self.offset = 0  # bytes of the options matched so far
        self.value = b""
        self.live: list[int] = []  # starts of spans that match `value`
        self.offered: list[bytes] = []  # offered values that `value` is a prefix of
        self.options = self._keys(first=True)

    def clone(self) -> Cursor:
        other = Cursor.__new__(Cursor)
        other.shape, other.phase, other.slot = self.shape, self.phase, self.slot
        other.options, other.offset, other.value = self.options, self.offset, self.value
        other.live, other.offered = self.live, self.offered
        return other

    @property
    def done(self) -> bool:
        return self.phase == _DONE

    # -- what may come next ------------------------------------------------------------------------------

    _CLOSE, _NULL, _STRING = -1, -2, -3  # option targets besides "key i"

    def _keys(self, *, first: bool) -> list[tuple[bytes, int]]:
        """After `{` or a value: a later key (never skipping a required one), or `}` when none is left."""
        out: list[tuple[bytes, int]] = []
        lead = b"{" if first else b", "
        for index in range(self.slot + 1, len(self.shape.slots)):
            slot = self.shape.slots[index]
            out.append((lead + slot.key + b":", index))
            if slot.required:
                return out
        out.append(((b"{" if first else b"") + b"}", self._CLOSE))
        return out

    def _value_start(self) -> list[tuple[bytes, int]]:
        slot = self.shape.slots[self.slot]
        options = [(b" null", self._NULL)]
        if slot.spans or slot.allowed:
            options.append((b' "', self._STRING))
        return options

    def forced(self) -> bytes:
        """The bytes that must come next whatever the model prefers (b'' when it has a choice)."""
        if self.phase != _CHOOSE or len(self.options) != 1:
            return b""
        return self.options[0][0][self.offset :]

    @property
    def may_end(self) -> bool:
        """True when the value being copied has two words or more and a closing quote may end it here."""
        value = self.value
        return self.phase == _VALUE and b" " in value and not _escaping(value) and self._complete()

    # -- advancing ------------------------------------------------------------------------------------------

    def accepts(self, data: bytes) -> bool:
        """True when `data` can continue the answer from here (checked on a copy)."""
        return self.clone().feed(data)

    def feed(self, data: bytes) -> bool:
        """Advance over `data`; False (and a cursor left in no useful state) when the shape forbids it."""
        for byte in data:
            if self.phase == _DONE:
                return False
            ok = self._choose(byte) if self.phase == _CHOOSE else self._value_byte(byte)
            if not ok:
                return False
        return True

    def _choose(self, byte: int) -> bool:
        at = self.offset
        kept = [(lit, to) for lit, to in self.options if len(lit) > at and lit[at] == byte]
        if not kept:
            return False
        self.options, self.offset = kept, at + 1
        finished = [(lit, to) for lit, to in kept if len(lit) == at + 1]
        if finished:
            self._after(finished[0][1])
        return True

    def _after(self, target: int) -> None:
        """A literal is complete: move to what it leads to."""
        self.offset = 0
        if target == self._CLOSE:
            self.phase, self.options = _DONE, []
        elif target == self._NULL:
            self.options = self._keys(first=False)
        elif target == self._STRING:
            slot = self.shape.slots[self.slot]
            self.phase, self.value = _VALUE, b""
            self.live = list(self.shape.source.starts) if slot.spans else []
            self.offered = [v for v in slot.allowed if v]
        else:
            self.slot = target
            self.options = self._value_start()

    def _value_byte(self, byte: int) -> bool:
        value = self.value
        if byte == _QUOTE and not _escaping(value):
            if not self._complete():
                return False
            self.phase = _CHOOSE
            self.options = self._keys(first=False)
            return True
        size = len(value)
        data = self.shape.source.data
        live = [p for p in self.live if p + size < len(data) and data[p + size] == byte]
        offered = [v for v in self.offered if len(v) > size and v[size] == byte]
        if not live and not offered:
            return False
        self.value, self.live, self.offered = value + bytes((byte,)), live, offered
        return True

    def _complete(self) -> bool:
        """The value so far is a whole span (ends at a word end) or a whole offered value."""
        size = len(self.value)
        if not size:
            return False
        if any(len(v) == size for v in self.offered):
            return True
        ends = self.shape.source.ends
        return any(p + size in ends for p in self.live)


def _escaping(value: bytes) -> bool:
    """True when `value` ends inside an escape (an odd run of backslashes), so a quote is content."""
    run = len(value) - len(value.rstrip(b"\\"))
    return run % 2 == 1
