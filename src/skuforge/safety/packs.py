"""Policy packs: versioned YAML data saying which terms are a problem, of what kind, and how serious.

A pack (built in under `skuforge/safety/packs/`, or the user's own) looks like::

    name: en
    version: "2024.06.1"
    market: US
    language: en
    description: ...
    sources: ["where the terms come from"]
    wordlists:            # word lists read at run time from an installed package (never copied here)
      - {package: better_profanity, resource: profanity_wordlist.txt, category: profanity, action: block,
         exclude: [pot, screw]}
    groups:               # terms written in the pack, grouped by category
      - {category: claim, action: flag, terms: ["best seller", "#1"]}
    allow: ["first aid"]  # phrases in which a term is fine (context allow-list)
    disable: ["free"]     # terms of EARLIER packs to drop
    detectors: {phone: block, email: block}   # PII kinds to run (see skuforge.safety.pii)

Packs apply in order: the same term (after folding) in a later pack overrides the earlier category and
action, and a later pack's `disable:` removes terms. Users add packs per job as YAML files or directories.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skuforge import yamlfile
from skuforge.errors import ConfigError, ExtraMissing, NotFoundError
from skuforge.safety.matcher import Match, Matcher, Term, TermAction, term_keys
from skuforge.safety.normalize import has_cjk, normalize
from skuforge.safety.pii import KINDS, find_pii

BUILTIN_DIR = Path(__file__).with_name("packs")
DEFAULT_PACKS = ("zh", "en", "pii")


class Wordlist(BaseModel):
    """A word list shipped inside an installed package, read when the pack loads."""

    model_config = ConfigDict(extra="forbid")
    package: str
    resource: str
    category: str
    action: TermAction = "block"
    extra: str = Field("safety", description="the skuforge extra that installs the package")
    min_cjk_chars: int = Field(1, description="drop CJK entries shorter than this (single characters)")
    min_latin_chars: int = Field(1, description="drop single-word Latin entries shorter than this")
    exclude: list[str] = Field(default_factory=list, description="entries not used, with the reason in YAML")


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str
    action: TermAction = "flag"
    note: str = ""
    terms: list[str]


class Pack(BaseModel):
    """One policy pack as written in YAML."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "0"
    market: str | None = None
    language: str | None = None
    description: str = ""
    sources: list[str] = Field(default_factory=list)
    wordlists: list[Wordlist] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)
    detectors: dict[str, TermAction] = Field(default_factory=dict)
    path: str | None = Field(None, exclude=True)

    def terms(self) -> list[Term]:
        """Every term of the pack, word lists included (this reads the installed packages)."""
        out: list[Term] = []
        for wl in self.wordlists:
            out.extend(Term(w, wl.category, wl.action, self.name) for w in _read_wordlist(wl))
        for group in self.groups:
            out.extend(Term(t, group.category, group.action, self.name) for t in group.terms)
        return out


def _read_wordlist(wl: Wordlist) -> list[str]:
    try:
        text = importlib.resources.files(wl.package).joinpath(wl.resource).read_text(encoding="utf-8")
    except ModuleNotFoundError as exc:
        raise ExtraMissing(f"The word list {wl.package}/{wl.resource}", wl.extra) from exc
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Word list '{wl.resource}' not found in the installed package '{wl.package}'.",
            f"Check the package version (pip show {wl.package}) against the pack's 'wordlists:' entry.",
        ) from exc
    excluded = {term_keys(e)[1][0] for e in wl.exclude if term_keys(e)[1]}
    words: list[str] = []
    for line in text.splitlines():
        word = line.strip()
        form, keys = term_keys(word)
        if not keys or keys[0] in excluded:
            continue
        if form == "compact" and sum(map(has_cjk, word)) < wl.min_cjk_chars:
            continue
        if form == "words" and " " not in keys[0] and len(keys[0]) < wl.min_latin_chars:
            continue
        words.append(word)
    return words


def read_pack(path: Path) -> Pack:
    """Read one pack file; a mistake names the file and the field."""
    try:
        data = yamlfile.load(path.read_text(encoding="utf-8"))
        pack = Pack.model_validate(data)
    except OSError as exc:
        raise NotFoundError(f"Cannot read safety pack {path}: {exc}", "Check the path.") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(
            f"Safety pack {path} is not valid: {exc}",
            "See the pack format in skuforge/safety/packs.py, or a built-in pack such as en.yaml.",
        ) from exc
    unknown = set(pack.detectors) - set(KINDS)
    if unknown:
        raise ConfigError(
            f"Safety pack {path} names unknown PII detectors: {', '.join(sorted(unknown))}.",
            f"Known detectors: {', '.join(KINDS)}.",
        )
    pack.path = str(path)
    return pack


def builtin_packs() -> dict[str, Pack]:
    """The packs that ship with skuforge, by name."""
    return {p.name: p for p in (read_pack(f) for f in sorted(BUILTIN_DIR.glob("*.yaml")))}


def _pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    if path.exists():
        return [path]
    raise NotFoundError(
        f"Safety pack path {path} does not exist.", "Give a YAML pack file or a directory of them."
    )


def competitor_pack(path: Path, action: TermAction = "flag") -> Pack:
    """A pack of competitor brands from a text file (one a line), a CSV (a 'brand' column, else the first) or
    YAML (a list, or a mapping with 'brands:'). Every brand gets category 'competitor'."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise NotFoundError(f"Cannot read competitor list {path}: {exc}", "Check the path.") from exc
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = yamlfile.load(text) or []
        brands = data.get("brands", []) if isinstance(data, dict) else data
    elif suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        col = next((i for i, h in enumerate(rows[0]) if h.strip().lower() == "brand"), None) if rows else None
        brands = [r[col or 0] for r in rows[0 if col is None else 1 :] if r]
    else:
        brands = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    if not isinstance(brands, list):
        raise ConfigError(f"Competitor list {path} is not a list of brands.", "Write one brand per line.")
    clean = sorted({str(b).strip() for b in brands if str(b).strip()})
    group = Group(category="competitor", action=action, terms=clean)
    return Pack(
        name="competitors",
        version=path.name,
        description=f"competitor brands from {path}",
        groups=[group],
        path=str(path),
    )


def load_packs(
    names: Sequence[str] = DEFAULT_PACKS,
    *,
    extra: Iterable[Path | str] = (),
    competitors: Path | str | None = None,
) -> PackSet:
    """The named built-in packs, then the user's packs (files or directories) in order, then competitors."""
    builtin = builtin_packs()
    packs: list[Pack] = []
    for name in names:
        if name not in builtin:
            raise NotFoundError(
                f"Unknown safety pack '{name}'.",
                f"Built-in packs: {', '.join(sorted(builtin))}; give your own with a YAML path.",
            )
        packs.append(builtin[name])
    for item in extra:
        packs.extend(read_pack(f) for f in _pack_files(Path(item)))
    if competitors:
        packs.append(competitor_pack(Path(competitors)))
    return PackSet(packs)


@dataclass
class PackSet:
    """Packs resolved in order into one term table, allow-list and PII detector set; scans text."""

    packs: list[Pack]
    terms: dict[str, Term] = field(init=False)
    detectors: dict[str, TermAction] = field(init=False)

    def __post_init__(self) -> None:
        self.terms = {}
        self.detectors = {}
        for pack in self.packs:
            for gone in filter(None, (_key(t) for t in pack.disable)):
                self.terms.pop(gone, None)
            self.detectors.update(pack.detectors)
            for term in pack.terms():
                key = _key(term.text)
                if key:
                    self.terms.pop(key, None)  # re-insert so a later pack's term wins
                    self.terms[key] = term

    @cached_property
    def matcher(self) -> Matcher:
        return Matcher(self.terms.values(), [a for p in self.packs for a in p.allow])

    def scan(self, text: str) -> list[Match]:
        """Every term and PII match in `text`, ordered by position."""
        norm = normalize(text)
        found = self.matcher.scan_normalized(norm)
        if self.detectors:
            pii_pack = next((p.name for p in reversed(self.packs) if p.detectors), "pii")
            found += find_pii(norm, self.detectors, pack=pii_pack)
        return sorted(found, key=lambda m: (m.start, m.end, m.term))


def _key(term: str) -> str | None:
    keys = term_keys(term)[1]
    return keys[0] if keys else None
