"""Prompt cost levers, measured: packing K products per request, the static prompt prefix, token ratios.

    python bench/bench_pack.py pack --model local:qwen2.5-0.5b --n 40 --k 1 8  # tokens/product, F1
    python bench/bench_pack.py prefix                                          # static prefix share
    python bench/bench_pack.py tokens                                          # tokens per char

`pack` runs the built-in `attributes` recipe (with `pack: K` added) through the real runner over OA-Mine
products (two categories, half each, so each category's products share one prompt prefix), scores with
`skuforge.eval`, and prints input/output tokens per product, requests, seconds and micro F1 per K.
`tokens` counts tokens with the local model's own tokenizer (Qwen2.5 BPE, the family of the Qwen and
DeepSeek hosted models) over real product titles, to calibrate `providers/tokens.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import tempfile
import time
from pathlib import Path

from skuforge.eval.datasets import data_dir


def _gold(n: int, categories: list[str]) -> list:
    from skuforge.eval import fill_absent, load_gold

    items = fill_absent(load_gold(data_dir("oa-mine-extractgpt", "train_0.2.jsonl")))
    per = n // len(categories)
    return [i for c in categories for i in [x for x in items if x.category == c][:per]]


def _write_inputs(folder: Path, gold: list, k: int) -> tuple[Path, Path]:
    from skuforge.recipes import BUILTIN_DIR

    catalog = folder / "products.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sku", "title", "category"])
        for item in gold:
            w.writerow([f"P{item.id}", item.row["title"], item.category])
    text = (Path(BUILTIN_DIR) / "attributes.yaml").read_text(encoding="utf-8")
    recipe = folder / f"attributes_pack{k}.yaml"
    recipe.write_text(text + f"\npack: {k}\n", encoding="utf-8")
    return catalog, recipe


def run_pack(model: str, gold: list, k: int, category: str) -> dict:
    """One run of the attributes recipe at pack K over one category's products."""
    from skuforge.engine.runner import Runner
    from skuforge.engine.spec import JobSpec
    from skuforge.eval.runner import predictions
    from skuforge.store import open_store

    names = list(gold[0].attributes)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog, recipe = _write_inputs(folder, gold, k)
        store = open_store(f"sqlite:///{folder / 'store.db'}")
        spec = JobSpec.create(
            catalog, recipe=str(recipe), model=model, params={"attributes": names}, cache=False
        )
        job = store.create_job(
            kind="run",
            catalog=spec.catalog,
            recipe=spec.recipe,
            model=spec.model,
            params=spec.params,
            selection=spec.selection.model_dump(),
            settings=spec.settings_blob(),
            state="queued",
        )
        started = time.perf_counter()
        progress = asyncio.run(Runner(store, job).run())
        seconds = time.perf_counter() - started
        store.flush()
        outputs = {i.row_id: i.output for i in store.items(job.id)}
        packed = sum(1 for i in store.items(job.id) if i.meta and i.meta.get("packed"))
        store.close()
    pairs = [(g.attributes, predictions(outputs.get(f"P{g.id}"), names)) for g in gold]
    return {
        "category": category,
        "k": k,
        "products": len(gold),
        "requests": progress.requests,
        "in": progress.input_tokens,
        "out": progress.output_tokens,
        "seconds": seconds,
        "packed": packed,
        "failed": progress.failed,
        "pairs": pairs,
    }


def cmd_pack(args: argparse.Namespace) -> None:
    from skuforge.eval.scoring import score

    gold = _gold(args.n, args.categories)
    for k in args.k:
        rows = [run_pack(args.model, [g for g in gold if g.category == c], k, c) for c in args.categories]
        n = sum(r["products"] for r in rows)
        pairs = [p for r in rows for p in r["pairs"]]
        f1 = score(pairs)["normalised"].summary()["micro"]["f1"]
        tin, tout = sum(r["in"] for r in rows), sum(r["out"] for r in rows)
        req, secs = sum(r["requests"] for r in rows), sum(r["seconds"] for r in rows)
        packed, failed = sum(r["packed"] for r in rows), sum(r["failed"] for r in rows)
        print(
            f"K={k}: {n} products, {req} requests, {tin / n:.0f} in + {tout / n:.0f} out tokens/product, "
            f"{secs / n:.2f} s/product, {packed} answered from packs, {failed} failed, micro F1 {f1:.3f}",
            flush=True,
        )


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cmd_prefix(args: argparse.Namespace) -> None:
    """Share of each request (in estimated tokens) that is identical across products: the cacheable prefix."""
    from skuforge.catalog import open_catalog
    from skuforge.providers.tokens import estimate_tokens
    from skuforge.recipes import list_recipes, load_recipe

    catalog = open_catalog(args.catalog)
    rows = [r.data for r, _ in zip(catalog.rows(), range(args.rows), strict=False)]
    for info in list_recipes():
        recipe = load_recipe(info.name)
        params = recipe.resolve_params({"locales": ["de"]} if "locales" in recipe.params else {})
        for step in recipe.steps:
            texts = []
            for i, row in enumerate(rows):
                try:
                    request = step.build_request(
                        row, {}, (step.variants(params) or [{}])[0], params, row_label=str(i)
                    )
                except Exception:  # noqa: BLE001 - a bench: a row the recipe cannot use is skipped
                    continue
                if request is not None:
                    texts.append("\n\n".join(f"[{m.role}]\n{m.content}" for m in request.messages))
            if len(texts) < 2:
                continue
            shared = min(_common_prefix(texts[0], t) for t in texts[1:])
            share = [estimate_tokens(t[:shared]) / estimate_tokens(t) for t in texts]
            print(
                f"{info.name}.{step.name}: {len(texts)} requests, "
                f"static prefix {sum(share) / len(share):.0%} of tokens (min {min(share):.0%}), "
                f"{estimate_tokens(texts[0][:shared])} tokens"
            )


def cmd_tokens(args: argparse.Namespace) -> None:
    """Tokens per character for CJK and Latin text by the local Qwen tokenizer, on real titles."""
    import llama_cpp

    from skuforge.providers.local_models import resolve_model
    from skuforge.providers.tokens import _CJK, CJK_TOKENS_PER_CHAR, LATIN_TOKENS_PER_CHAR, estimate_tokens

    llm = llama_cpp.Llama(
        str(resolve_model(args.model.removeprefix("local:"))), vocab_only=True, verbose=False
    )
    zh, en = [], []
    with data_dir("shopee-title-translation", "dev_pairs_zh_en.tsv").open(encoding="utf-8") as f:
        for parts in csv.reader(f, delimiter="\t"):
            if len(parts) >= 3 and _CJK.search(parts[1]):
                zh.append(parts[1])
                en.append(parts[2])
    with data_dir("oa-mine-extractgpt", "train_0.2.jsonl").open(encoding="utf-8") as f:
        en += [re.search(r'"input": "(.*?)", "category"', line).group(1) for line in f if '"input"' in line]
    jd_path = data_dir("jd-mepave-sample", "jdai.jave.fashion.train.sample")
    jd = [line.split("\t")[2] for line in jd_path.open(encoding="utf-8") if line.count("\t") >= 3]

    def count(text: str) -> int:
        return len(llm.tokenize(text.encode(), add_bos=False, special=False))

    def per_char(texts: list[str]) -> float:
        return sum(count(t) for t in texts) / max(1, sum(len(t) for t in texts))

    def runs(texts: list[str]) -> list[str]:
        return [r for t in texts for r in re.findall(r"[\u4e00-\u9fff]+", t)]

    def error(texts: list[str]) -> float:
        return sum(estimate_tokens(t) for t in texts) / sum(count(t) for t in texts) - 1

    zh, en = zh[: args.titles], en[: args.titles]
    print(
        f"Latin: {len(en)} English titles, {per_char(en):.3f} tokens/char (shipped {LATIN_TOKENS_PER_CHAR})"
    )
    print(f"CJK, simplified (JD, {len(jd)} texts): {per_char(runs(jd)):.3f} tokens per char of pure CJK runs")
    print(
        f"CJK, traditional (Shopee TW, {len(zh)} titles): {per_char(runs(zh)):.3f} tokens per CJK char "
        f"(shipped {CJK_TOKENS_PER_CHAR})"
    )
    print(
        f"estimate_tokens total error: {error(en):+.1%} English titles, {error(jd):+.1%} JD texts, "
        f"{error(zh):+.1%} Shopee titles (mixed scripts, full-width symbols)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    pack = sub.add_parser("pack")
    pack.add_argument("--model", default="local:qwen2.5-0.5b")
    pack.add_argument("--n", type=int, default=40)
    pack.add_argument("--k", type=int, nargs="+", default=[1, 8])
    pack.add_argument("--categories", nargs="+", default=["Coffee", "Tea"])
    prefix = sub.add_parser("prefix")
    prefix.add_argument("--catalog", default="examples/catalog.xlsx")
    prefix.add_argument("--rows", type=int, default=20)
    tokens = sub.add_parser("tokens")
    tokens.add_argument("--model", default="local:qwen2.5-0.5b")
    tokens.add_argument("--titles", type=int, default=2000)
    args = parser.parse_args()
    {"pack": cmd_pack, "prefix": cmd_prefix, "tokens": cmd_tokens}[args.cmd](args)


if __name__ == "__main__":
    main()
