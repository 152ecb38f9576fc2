"""Cut documents into retrievable chunks that keep their heading path and never end mid-sentence.

A chunk is what a prompt quotes, so it must read as a whole: Markdown headings become a path
("Style guide > Tone") carried by every chunk under them, sentences are kept intact (CJK ends on
。！？；, Latin on . ! ?, and a newline ends a sentence in both), and chunks are packed up to a token cap
with a small overlap of whole sentences so a fact at a boundary is found from either side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from skuforge.providers.tokens import estimate_tokens

DEFAULT_MAX_TOKENS = 300
DEFAULT_OVERLAP_TOKENS = 40

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# A sentence ends after CJK terminal punctuation (with any closing quotes), after Latin . ! ? followed by
# whitespace, or at a newline. The lookbehind keeps the punctuation with its sentence.
_SENTENCE_END = re.compile(
    r"(?<=[。！？；])(?![」』”’）)\]])|(?<=[。！？；][」』”’）)\]])"
    r"|(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+|\n+"
)


@dataclass
class Chunk:
    """One retrievable passage: its text, the heading path above it, and where it sits in the source."""

    text: str
    heading: str = ""
    position: int = 0
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)


def sections(markdown: str) -> list[tuple[str, str]]:
    """Split Markdown into (heading path, body) pairs; text before the first heading has an empty path."""
    path: list[tuple[int, str]] = []
    out: list[tuple[str, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        text = "\n".join(body).strip()
        if text:
            out.append((" > ".join(title for _, title in path), text))
        body.clear()

    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        flush()
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level]
        path.append((level, match.group(2).strip()))
    flush()
    return out


def split_sentences(text: str) -> list[str]:
    """Split text into sentences for CJK and Latin script alike; never splits inside a CJK sentence."""
    parts = _SENTENCE_END.split(text)
    return [p.strip() for p in parts if p and p.strip()]


def _hard_split(sentence: str, max_tokens: int) -> list[str]:
    """Cut a single sentence that alone exceeds the cap, at spaces when it has them, else by characters."""
    pieces: list[str] = []
    current = ""
    units = re.findall(r"\S+\s*", sentence) if " " in sentence else list(sentence)
    for unit in units:
        if current and estimate_tokens(current + unit) > max_tokens:
            pieces.append(current.strip())
            current = ""
        current += unit
    if current.strip():
        pieces.append(current.strip())
    return pieces


def _joiner(left: str, right: str) -> str:
    """CJK sentences join without a space; Latin ones with one."""
    if left and right and (ord(left[-1]) > 0x2E80 or ord(right[0]) > 0x2E80):
        return ""
    return " "


def _join(sentences: list[str]) -> str:
    text = ""
    for s in sentences:
        text = s if not text else text + _joiner(text, s) + s
    return text


def pack(sentences: list[str], max_tokens: int, overlap_tokens: int) -> list[str]:
    """Pack whole sentences into pieces of at most max_tokens, repeating trailing sentences as overlap."""
    units: list[str] = []
    for s in sentences:
        units.extend(_hard_split(s, max_tokens) if estimate_tokens(s) > max_tokens else [s])
    pieces: list[str] = []
    current: list[str] = []
    for unit in units:
        if current and estimate_tokens(_join([*current, unit])) > max_tokens:
            pieces.append(_join(current))
            carry: list[str] = []
            for prev in reversed(current):
                if estimate_tokens(_join([prev, *carry])) > overlap_tokens:
                    break
                if estimate_tokens(_join([prev, *carry, unit])) > max_tokens:
                    break
                carry.insert(0, prev)
            current = carry
        current.append(unit)
    if current:
        pieces.append(_join(current))
    return pieces


def chunk_markdown(
    text: str,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunk a Markdown or plain-text document; each chunk carries the heading path it sits under."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    chunks: list[Chunk] = []
    for heading, body in sections(text):
        for piece in pack(split_sentences(body), max_tokens, overlap_tokens):
            chunks.append(Chunk(text=piece, heading=heading, position=len(chunks)))
    return chunks


class _HTMLToMarkdown(HTMLParser):
    """Turn HTML into Markdown-ish text: h1..h6 become headings, block tags end lines, scripts vanish."""

    _BLOCKS = {"p", "div", "li", "br", "tr", "section", "article", "ul", "ol", "table", "hr", "dd", "dt"}
    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_markdown(html: str) -> str:
    """Strip HTML to Markdown-ish text so its headings still shape the chunks."""
    parser = _HTMLToMarkdown()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    return "\n".join(line for line in lines if line and line not in {"#" * n for n in range(1, 7)})
