"""Translation quality and speed on parallel titles: the translate recipe and the experiments around it.

    python bench/eval_translation.py PAIRS --part test --n 60   # the model `skuforge run` picks
    python bench/eval_translation.py PAIRS --part test --n 60 --model local:qwen2.5-0.5b --out out/t.html
    python bench/eval_translation.py PAIRS --part dev --n 60 --opencc t2s --shots 3 --fix

PAIRS is a parallel file `skuforge eval translation` reads, e.g. the shared Shopee pairs
(`shared/data/shopee-title-translation/dev_pairs_zh_en.tsv`, Traditional Chinese -> English).

The pairs are split once, by a hash of each pair's id (`--seed`), into a dev part (3/4, for tuning) and a test
part (1/4, for reporting); `--n` takes the first n of the chosen part in a fixed shuffled order. Experiments,
all off by default so the plain run measures the recipe as shipped:

- `--opencc t2s|s2t`: convert the source between Traditional and Simplified Chinese before translating;
- `--shots K`: K demonstrations before each title: the dev pairs most like it (character-bigram overlap),
  never the title itself, shown as earlier turns of the conversation;
- `--fix whole|fragments`: a second request for an output that still has source-script text: `whole` asks
  for the whole title again with those fragments translated, `fragments` asks for the fragments alone (in
  the title's context) and puts their translations in place, `repair` continues the recipe's own
  conversation with the script check's reason as a repair message (the "translate, then fix" pass);
- `--recipe FILE` and `--set key=value`: another translation recipe or parameter.

Prints the scores and writes the HTML and JSON report of `skuforge eval translation`. One request at a time:
a local model uses the machine's cores. Note the load average printed with each timing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from skuforge.checks.script import leftovers
from skuforge.config import load_settings
from skuforge.eval.translation import (
    FIELD,
    Outcome,
    Pair,
    RecipeChain,
    load_pairs,
    summarise,
    translate_all,
    translate_params,
)
from skuforge.eval.translation_report import write_translation_report
from skuforge.providers import get_provider
from skuforge.providers.base import Message, Provider, Request, Result
from skuforge.providers.choice import choose_model
from skuforge.recipes import load_recipe
from skuforge.recipes.prompt import example_turns
from skuforge.recipes.sandbox import dumps

_DATA = re.compile(r"<product>\s*(\{.*\})\s*</product>", re.DOTALL)


def split(pairs: list[Pair], part: str, seed: int) -> list[Pair]:
    """The dev (3/4) or test (1/4) part, by a hash of the id, in a fixed shuffled order."""

    def bucket(p: Pair) -> int:
        return int(hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest(), 16) % 4

    chosen = [p for p in pairs if (bucket(p) == 0) == (part == "test")]
    random.Random(seed).shuffle(chosen)
    return chosen


def bigrams(text: str) -> set[str]:
    text = re.sub(r"\s+", " ", text.casefold())
    return {text[i : i + 2] for i in range(len(text) - 1)}


class Experiments(Provider):
    """A provider wrapper that adds the experiments to every request of the recipe (and a fix-up pass)."""

    def __init__(self, inner: Provider, pool: list[Pair], shots: int, convert: Any) -> None:
        self.inner, self.pool, self.shots, self.convert = inner, pool, shots, convert
        self.name = getattr(inner, "name", "experiments")
        self.capabilities = inner.capabilities
        self._grams = [bigrams(p.source) for p in pool]

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def __aenter__(self) -> Experiments:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    def nearest(self, source: str) -> list[Pair]:
        grams = bigrams(source)
        scored = [
            (len(grams & g) / (len(grams | g) or 1), p)
            for g, p in zip(self._grams, self.pool, strict=True)
            if p.source != source
        ]
        scored.sort(key=lambda s: -s[0])
        return [p for _, p in scored[: self.shots]]

    def adapt(self, request: Request) -> Request:
        last = request.messages[-1]
        match = _DATA.search(last.content)
        if not match:
            return request
        data = json.loads(match.group(1))
        messages = list(request.messages)
        if self.convert is not None and isinstance(data.get(FIELD), str):
            converted = {**data, FIELD: self.convert.convert(data[FIELD])}
            content = last.content.replace(match.group(1), dumps(converted))
            messages[-1] = Message(role="user", content=content)
        if self.shots and isinstance(data.get(FIELD), str):
            ask = last.content[match.end() :].strip()
            chosen = [({FIELD: p.source}, {FIELD: p.reference}) for p in self.nearest(data[FIELD])]
            turns = example_turns(chosen, [FIELD], [FIELD], ask)
            messages = [*messages[:-1], *turns, messages[-1]]
        return request.model_copy(update={"messages": messages})

    async def generate(self, request: Request) -> Result:
        return await self.inner.generate(self.adapt(request))


def _object(keys: list[str]) -> dict[str, Any]:
    props = {k: {"type": "string"} for k in keys}
    return {"type": "object", "properties": props, "required": keys, "additionalProperties": False}


async def fix_fragments(provider: Provider, pair: Pair, output: str, left: list[str]) -> str | None:
    """Translate only the leftover fragments (in the title's context) and put them in place."""
    request = Request(
        messages=[
            Message(
                role="system",
                content="Translate each Chinese phrase into English, as it is meant in the product title. "
                "Answer with one JSON object: each phrase as a key, its English translation as the value.",
            ),
            Message(
                role="user",
                content=f"Product title: {pair.source}\nPhrases: {json.dumps(left, ensure_ascii=False)}",
            ),
        ],
        json_schema=_object(left),
        json_mode=True,
        max_tokens=32 + 8 * sum(len(x) for x in left),
        temperature=0.0,
        tag="bench.fix-fragments",
    )
    result = await provider.generate(request)
    try:
        mapping = json.loads(result.text)
    except ValueError:
        return None
    fixed = output
    for fragment in sorted(left, key=len, reverse=True):
        english = str(mapping.get(fragment) or "").strip()
        if english:
            fixed = re.sub(rf"\s*{re.escape(fragment)}\s*", f" {english} ", fixed)
    return re.sub(r"\s+", " ", fixed).strip()


async def fix_by_repair(
    provider: Provider, chain: RecipeChain, pair: Pair, output: str, left: list[str], locale: str
) -> str | None:
    """The recipe's own conversation once more, with the script check's reason as the repair message."""
    step = chain.recipe.steps[-1]
    row = {FIELD: pair.source}
    request = step.build_request(row, {}, {"locale": locale}, chain.params, row_label=pair.id)
    quoted = ", ".join(f"'{x}'" for x in left)
    reason = (
        f"'{FIELD}' still has Chinese text from the source, untranslated into {locale}: {quoted}. "
        "Translate it."
    )
    repair = step.repair_request(request, json.dumps({FIELD: output}, ensure_ascii=False), reason)
    result = await provider.generate(repair)
    try:
        value = json.loads(result.text).get(FIELD)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value.strip() else None


async def fix_pass(
    provider: Provider, chain: RecipeChain, pair: Pair, output: str, locale: str, mode: str
) -> str | None:
    """Ask once more for an output with source-script leftovers; None when there was nothing to fix."""
    left = [x.text for x in leftovers(output, locale, source=pair.source) if x.from_source]
    if not left:
        return None
    if mode == "fragments":
        return await fix_fragments(provider, pair, output, list(dict.fromkeys(left)))
    if mode == "repair":
        return await fix_by_repair(provider, chain, pair, output, list(dict.fromkeys(left)), locale)
    fragments = ", ".join(dict.fromkeys(left))
    request = Request(
        messages=[
            Message(
                role="system",
                content="You correct English product titles translated from Chinese. Answer with JSON "
                '{"title": "..."}: the whole corrected English title, with no Chinese characters left.',
            ),
            Message(
                role="user",
                content=f"Chinese title: {pair.source}\nEnglish title: {output}\n"
                f"These Chinese parts are still untranslated: {fragments}. Translate them into English "
                "and give the whole corrected English title.",
            ),
        ],
        json_schema={
            "type": "object",
            "properties": {FIELD: {"type": "string"}},
            "required": [FIELD],
            "additionalProperties": False,
        },
        json_mode=True,
        max_tokens=48 + 3 * len(pair.source),
        temperature=0.0,
        tag="bench.fix",
    )
    result = await provider.generate(request)
    try:
        value = json.loads(result.text).get(FIELD)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value.strip() else None


def reused(path: Path, pairs: list[Pair]) -> list[Outcome]:
    """First-pass outcomes from an earlier report of the same pairs (status and output)."""
    items = {i["id"]: i for i in json.loads(path.read_text(encoding="utf-8"))["items"]}
    missing = [p.id for p in pairs if p.id not in items]
    if missing:
        raise SystemExit(
            f"{path} has no output for pairs {missing[:5]}: run it with the same --part/--n/--seed."
        )
    return [
        Outcome(output=items[p.id]["output"], status=items[p.id]["status"], seconds=items[p.id]["seconds"])
        for p in pairs
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", type=Path, help="parallel titles (TSV/CSV/JSONL), e.g. dev_pairs_zh_en.tsv")
    ap.add_argument("--part", choices=("dev", "test"), default="dev")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--model", default=None, help="default: the model `skuforge run` uses for the recipe")
    ap.add_argument("--locale", default="en")
    ap.add_argument("--recipe", default="translate")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe parameter key=value")
    ap.add_argument("--opencc", choices=("t2s", "s2t"), default=None)
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--fix", choices=("whole", "fragments", "repair"), default=None)
    ap.add_argument(
        "--first-pass",
        type=Path,
        default=None,
        help="a JSON report of the same pairs: reuse its outputs as the first pass (to compare --fix modes)",
    )
    ap.add_argument("--out", type=Path, default=Path("out/eval-translation.html"))
    args = ap.parse_args(argv)

    recipe = load_recipe(args.recipe)
    args.model = choose_model(args.model, load_settings(), recipe).model
    print(f"model: {args.model}", file=sys.stderr)
    every = load_pairs(args.pairs, locale=args.locale)
    pairs = split(every, args.part, args.seed)[: args.n]
    pool = split(every, "dev", args.seed)
    given = dict(s.split("=", 1) for s in args.sets)
    chain = RecipeChain(recipe, translate_params(recipe, args.locale, given), args.locale)
    convert = None
    if args.opencc:
        import opencc

        convert = opencc.OpenCC(args.opencc)
    provider = Experiments(get_provider(args.model), pool, args.shots, convert)
    load = os.getloadavg()[0]
    started = time.perf_counter()

    async def go() -> list[Any]:
        async with provider:
            if args.first_pass:
                outcomes = reused(args.first_pass, pairs)
            else:
                outcomes = await translate_all(pairs, provider, chain, concurrency=1)
            if args.fix:
                for pair, outcome in zip(pairs, outcomes, strict=True):
                    fixed = await fix_pass(provider, chain, pair, outcome.output, args.locale, args.fix)
                    if fixed is not None:
                        outcome.output, outcome.requests = fixed, outcome.requests + 1
            return outcomes

    outcomes = asyncio.run(go())
    seconds = time.perf_counter() - started
    report = summarise(pairs, outcomes, args.locale)
    report["meta"] = {
        "pairs": str(args.pairs),
        "part": args.part,
        "seed": args.seed,
        "model": args.model,
        "recipe": f"{recipe.name} {recipe.version}",
        "experiments": {"opencc": args.opencc, "shots": args.shots, "fix": args.fix, "set": given},
        "items": len(pairs),
        "seconds": round(seconds, 1),
        "seconds_per_title": round(seconds / max(len(pairs), 1), 2),
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }
    write_translation_report(report, args.out)
    s = report["scores"]
    print(
        f"{args.part} n={s['items']} chrF {s['chrf']:.1f} BLEU {s['bleu']:.1f} "
        f"leftover {s['leftover']} (unflagged {s['leftover_unflagged']}) "
        f"codes {s['codes_kept']}/{s['codes']} ({s['codes_kept_share']:.1%}) "
        f"done/flagged/failed {s['done']}/{s['flagged']}/{s['failed']} "
        f"{report['meta']['seconds_per_title']} s/title load {report['meta']['load_average']} "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
