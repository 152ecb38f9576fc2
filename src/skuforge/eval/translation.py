"""Translation evaluation: parallel titles -> the `translate` recipe -> a model -> chrF, BLEU and leftovers.

    report = run_translation_eval("pairs.tsv", "local:qwen2.5-0.5b", limit=100, out="translation.html")
    report["scores"]["chrf"], report["scores"]["leftover_unflagged"]

Each pair's source becomes a catalog row `{"title": source}` that runs through every step of the recipe, the
way `skuforge run` would run it (steps in order, each reading the earlier ones as `outputs.<step>`, each
checked by its own checks). The last step that gives the field gives the translation. Scores:

- chrF and BLEU from sacrebleu over the whole corpus, lowercased (the Shopee competition's setting);
- leftovers: outputs that still contain text in the source's script (`checks.script`), and how many of those
  the recipe's checks let through as `done` (`leftover_unflagged`, which must be 0);
- codes kept: model numbers and codes of the source (`SC-MK-010`, `B45729`, `500ml`) found in the output;
- seconds per title, with the load average, because a local model's speed depends on what else runs.

A pair whose call or parse fails counts as an empty translation and is listed under `errors`.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from skuforge.checks.base import CheckItem, Finding, build, verdict
from skuforge.checks.glossary import codes, lost_codes
from skuforge.checks.script import leftovers
from skuforge.errors import CatalogError, OutputError, ProviderError, RecipeError, require

FIELD = "title"
_SEVERITY = {"done": 0, "flagged": 1, "failed": 2}


@dataclass
class Pair:
    """One source title and its human reference translation."""

    id: str
    source: str
    reference: str


@dataclass
class Outcome:
    """What the recipe made of one pair."""

    output: str = ""
    status: str = "done"
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    requests: int = 0


# -- pairs --------------------------------------------------------------------------------------------------


def _columns(header: list[str], locale: str, source: str | None, reference: str | None) -> tuple[str, str]:
    lang = locale.split("-")[0].casefold()
    named = {h.casefold(): h for h in header}
    ref = reference or named.get("reference") or named.get("target") or named.get(f"title_{lang}")
    src = source or named.get("source")
    if src is None:
        titles = [h for h in header if h.casefold().startswith("title_") and h != ref]
        src = titles[0] if len(titles) == 1 else None
    if not src or not ref or src not in header or ref not in header:
        raise CatalogError(
            f"Cannot tell the source and reference columns from the header {header}.",
            "Name them 'source' and 'reference' (or title_zh / title_en), or give --source-column and "
            "--reference-column.",
        )
    return src, ref


def _records(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        return (list(rows[0]) if rows else []), rows
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def load_pairs(
    path: str | Path,
    *,
    locale: str = "en",
    source_column: str | None = None,
    reference_column: str | None = None,
) -> list[Pair]:
    """Read parallel titles from a TSV, CSV or JSONL file; rows with an empty side are left out."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"Pairs file {path} does not exist.", "Check the path given to --pairs.")
    try:
        header, rows = _records(path)
    except (UnicodeDecodeError, orjson.JSONDecodeError, csv.Error) as exc:
        raise CatalogError(
            f"Cannot read {path} as UTF-8 TSV, CSV or JSONL: {exc}.",
            "Give one pair per line with a header, e.g. 'row<TAB>title_zh<TAB>title_en'.",
        ) from exc
    src, ref = _columns(header, locale, source_column, reference_column)
    id_col = next((h for h in header if h.casefold() in ("id", "row", "sku")), None)
    pairs = []
    for number, row in enumerate(rows, 1):
        source, reference = str(row.get(src) or "").strip(), str(row.get(ref) or "").strip()
        if source and reference:
            pairs.append(Pair(str(row[id_col]) if id_col else str(number), source, reference))
    if not pairs:
        raise CatalogError(
            f"Pairs file {path} has no pair with both sides filled.", f"Columns: {src}, {ref}."
        )
    return pairs


# -- measures -----------------------------------------------------------------------------------------------


def codes_kept(source: str, output: str) -> tuple[int, list[str]]:
    """(codes of the source, those missing from the output); case and spaces are ignored."""
    return len(codes(source)), lost_codes(source, output)


def corpus_scores(outputs: list[str], references: list[str]) -> dict[str, float]:
    """chrF and BLEU over the corpus, lowercased, as sacrebleu computes them."""
    sacrebleu = require("sacrebleu", "Translation evaluation (chrF, BLEU)", "eval")
    chrf = sacrebleu.metrics.CHRF(lowercase=True).corpus_score(outputs, [references]).score
    bleu = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(outputs, [references]).score
    return {"chrf": round(float(chrf), 2), "bleu": round(float(bleu), 2)}


def sentence_chrf(output: str, reference: str) -> float:
    sacrebleu = require("sacrebleu", "Translation evaluation (chrF, BLEU)", "eval")
    metric = sacrebleu.metrics.CHRF(lowercase=True)
    return round(float(metric.sentence_score(output, [reference]).score), 1)


# -- running the recipe -------------------------------------------------------------------------------------


async def _findings(check: Any, item: CheckItem) -> list[Finding]:
    """A check's findings; a check that calls a model returns an awaitable of them."""
    found = check(item)
    return list(await found) if inspect.isawaitable(found) else list(found)


class RecipeChain:
    """Every step of a translation recipe for one row and one locale, run in order like the engine runs it."""

    def __init__(self, recipe: Any, params: dict[str, Any], locale: str) -> None:
        self.recipe, self.params, self.locale = recipe, params, locale
        self.checks = {s.name: [build(c) for c in s.checks_for(params)] for s in recipe.steps}

    def _variant(self, step: Any) -> dict[str, Any]:
        variants = step.variants(self.params)
        return next((v for v in variants if v.get("locale") == self.locale), variants[0])

    @staticmethod
    async def _answer(provider: Any, step: Any, request: Any, outcome: Outcome) -> Any:
        """The parsed answer, after one repair request for an invalid one, as the engine does."""
        result = await provider.generate(request)
        outcome.requests += 1
        try:
            return step.parse(result.text, request.json_schema)
        except OutputError as first:
            repair = step.repair_request(request, result.text, first.message)
            result = await provider.generate(repair)
            outcome.requests += 1
            return step.parse(result.text, request.json_schema)

    async def _check(self, step: Any, row: dict[str, Any], output: Any) -> list[Finding]:
        item = CheckItem(row=row, output=output, recipe=self.recipe.name, step=step.name, locale=self.locale)
        return [f for check in self.checks[step.name] for f in await _findings(check, item)]

    async def run(self, provider: Any, row: dict[str, Any], label: str) -> Outcome:
        outcome, outputs = Outcome(), dict[str, Any]()
        started = time.perf_counter()
        for step in self.recipe.steps:
            variant = self._variant(step)
            request = step.build_request(row, outputs, variant, self.params, row_label=label)
            if request is None:
                continue
            parsed = await self._answer(provider, step, request, outcome)
            findings = await self._check(step, row, parsed)
            outputs[step.name] = parsed if variant == {} else {self.locale: parsed}
            outcome.findings += findings
            status = verdict(findings)
            if _SEVERITY[status] > _SEVERITY[outcome.status]:
                outcome.status = status
            if isinstance(parsed, dict) and isinstance(parsed.get(FIELD), str):
                outcome.output = parsed[FIELD]
            if status == "failed":
                break
        outcome.seconds = time.perf_counter() - started
        return outcome


def translate_params(recipe: Any, locale: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """The recipe's params for translating titles into `locale`, with the caller's settings on top."""
    raw = {"locales": locale, "fields": FIELD}
    raw.update({k: v for k, v in (given or {}).items() if k in recipe.param_specs})
    unknown = sorted(set(given or {}) - set(recipe.param_specs))
    if unknown:
        raise RecipeError(
            f"Recipe '{recipe.name}' has no parameter {', '.join(unknown)}.",
            f"Its parameters: {', '.join(sorted(recipe.param_specs))}.",
        )
    return dict(recipe.resolve_params(raw))


async def translate_all(
    pairs: list[Pair],
    provider: Any,
    chain: RecipeChain,
    *,
    concurrency: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[Outcome]:
    """Run the chain over every pair; a failed call or parse becomes an Outcome with `error`, never raises."""
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(pair: Pair) -> Outcome:
        nonlocal done
        async with sem:
            try:
                outcome = await chain.run(provider, {FIELD: pair.source}, pair.id)
            except (ProviderError, OutputError, RecipeError) as exc:
                outcome = Outcome(status="failed", error=exc.message)
        done += 1
        if progress:
            progress(done, len(pairs))
        return outcome

    return list(await asyncio.gather(*(one(p) for p in pairs)))


# -- the report ---------------------------------------------------------------------------------------------


def _item(pair: Pair, outcome: Outcome, locale: str) -> dict[str, Any]:
    left = [x.text for x in leftovers(outcome.output, locale, source=pair.source) if x.from_source]
    total, lost = codes_kept(pair.source, outcome.output)
    return {
        "id": pair.id,
        "source": pair.source,
        "reference": pair.reference,
        "output": outcome.output,
        "status": outcome.status,
        "chrf": sentence_chrf(outcome.output, pair.reference),
        "leftover": left,
        "codes": total,
        "codes_lost": lost,
        "notes": [f.reason for f in outcome.findings if not f.ok],
        "error": outcome.error,
        "seconds": round(outcome.seconds, 2),
        "requests": outcome.requests,
    }


def summarise(pairs: list[Pair], outcomes: list[Outcome], locale: str) -> dict[str, Any]:
    """Scores, per-item details and errors for a finished run."""
    items = [_item(p, o, locale) for p, o in zip(pairs, outcomes, strict=True)]
    scores = corpus_scores([i["output"] for i in items], [p.reference for p in pairs])
    with_left = [i for i in items if i["leftover"]]
    codes_total = sum(i["codes"] for i in items)
    codes_lost = sum(len(i["codes_lost"]) for i in items)
    scores.update(
        {
            "items": len(items),
            "leftover": len(with_left),
            "leftover_share": round(len(with_left) / max(len(items), 1), 4),
            "leftover_unflagged": sum(1 for i in with_left if i["status"] == "done"),
            "codes": codes_total,
            "codes_kept": codes_total - codes_lost,
            "codes_kept_share": round((codes_total - codes_lost) / codes_total, 4) if codes_total else 1.0,
            "done": sum(1 for i in items if i["status"] == "done"),
            "flagged": sum(1 for i in items if i["status"] == "flagged"),
            "failed": sum(1 for i in items if i["status"] == "failed"),
        }
    )
    errors = [{"id": i["id"], "error": i["error"]} for i in items if i["error"]]
    return {"scores": scores, "items": items, "errors": errors}


def run_translation_eval(
    pairs_path: str | Path,
    model: str,
    *,
    locale: str = "en",
    recipe: str = "translate",
    params: dict[str, Any] | None = None,
    limit: int | None = None,
    concurrency: int = 1,
    source_column: str | None = None,
    reference_column: str | None = None,
    out: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Load pairs, translate the first `limit` with `recipe` on `model`, score, and write the report."""
    from skuforge.providers import get_provider
    from skuforge.recipes import load_recipe

    every = load_pairs(
        pairs_path, locale=locale, source_column=source_column, reference_column=reference_column
    )
    pairs = every[:limit] if limit else every
    loaded = load_recipe(recipe)
    chain = RecipeChain(loaded, translate_params(loaded, locale, params), locale)
    provider = get_provider(model)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    async def go() -> list[Outcome]:
        async with provider:
            return await translate_all(pairs, provider, chain, concurrency=concurrency, progress=progress)

    outcomes = asyncio.run(go())
    seconds = time.perf_counter() - started
    report = summarise(pairs, outcomes, locale)
    report["meta"] = {
        "pairs": str(pairs_path),
        "model": model,
        "recipe": f"{loaded.name} {loaded.version}",
        "params": {k: v for k, v in chain.params.items() if v not in (None, [], {})},
        "locale": locale,
        "items": len(pairs),
        "concurrency": concurrency,
        "seconds": round(seconds, 1),
        "seconds_per_title": round(seconds / max(len(pairs), 1), 2),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "scoring": "sacrebleu chrF and BLEU, lowercased, corpus level",
    }
    if out:
        from skuforge.eval.translation_report import write_translation_report

        html_path, json_path = write_translation_report(report, out)
        report["meta"]["report"], report["meta"]["json"] = str(html_path), str(json_path)
    return report
