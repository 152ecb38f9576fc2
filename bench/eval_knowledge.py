"""Knowledge evaluation: retrieval recall, few-shot examples for attributes, and product Q&A.

    python bench/eval_knowledge.py retrieval            # recall@1/5/10, vector / keyword / hybrid (no LLM)
    python bench/eval_knowledge.py fewshot --n 40       # attribute F1, k=0 vs k=3 retrieved examples (LLM)
    python bench/eval_knowledge.py qa --n 40            # product Q&A against human answers (LLM)
    python bench/eval_knowledge.py all --json out.json

Data: the folder SKUFORGE_DATA names (see each dataset's SOURCE.md).

- retrieval: ePQA (amazon-product-qa/ePQA/dev.csv). Every candidate passage of the chosen questions' products
  is indexed once per product (duplicates merged); each question is a query; a hit is a passage labelled 2
  ("answers the question") for that question. Two settings: `product` filters the search to the question's
  product (how `qa` uses a knowledge base), `global` searches all products at once (harder).
- fewshot: OA-Mine and AE-110K (ExtractGPT splits). Test items: n products of train_0.2 spread over
  categories; the example pool: every other product of train.jsonl, stored as approved examples
  (`add_approved_example`) in a temporary SKUFORGE_HOME. k=0 is the built-in `attributes` recipe; k=3 is the
  same recipe with `{{ examples(k=3) }}` added to its instruction. Scored with skuforge.eval (normalised
  micro F1, the ExtractGPT convention).
- qa: ePQA questions with a human answer and a passage labelled 2 (answerable) and questions whose every
  candidate is labelled 0 (unanswerable). The product row is the title plus that question's candidate
  passages as fields (attributes by name, bullet_1, review_1, community_answer_1 ...). Rule: an answerable
  question is answered correctly when the model says answerable and (for a yes/no gold answer) starts with
  the same yes/no, or (otherwise) its answer has token F1 >= 0.3 with the human answer (stopwords removed);
  an unanswerable question is declined when the model says answerable=false.

The LLM parts run one request at a time (one model job on a 2-core machine); expect ~5-15 s per item.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from skuforge.eval.datasets import data_dir

KS = (1, 5, 10)
SOURCE_FIELD = {
    "bullet": "bullet",
    "description": "description",
    "review": "review",
    "cqa": "community_answer",
}
_STOP = {
    "a", "an", "the", "is", "it", "are", "was", "be", "to", "of", "and", "or", "in", "on", "for", "with",
    "this", "that", "does", "do", "can", "will", "i", "you", "they", "its", "as", "at", "by", "from", "have",
    "has", "not", "but", "if", "so", "there", "would", "which", "what", "yes", "no",
}  # fmt: skip


def _fresh_home() -> str:
    home = tempfile.mkdtemp(prefix="skuforge-eval-")
    os.environ["SKUFORGE_HOME"] = home
    return home


# -- ePQA ------------------------------------------------------------------------------------------------


def epqa_questions() -> dict[str, list[dict[str, str]]]:
    with data_dir("amazon-product-qa", "ePQA", "dev.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_question: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_question[row["qid"]].append(row)
    return by_question


def retrieval(n_questions: int, seed: int = 0) -> dict[str, Any]:
    """Recall@k of ePQA evidence for vector, keyword and hybrid search, per product and global."""
    from skuforge.knowledge import open_kb, search
    from skuforge.knowledge.chunking import Chunk

    _fresh_home()
    questions = {q: rows for q, rows in epqa_questions().items() if any(r["label"] == "2" for r in rows)}
    chosen = random.Random(seed).sample(sorted(questions), min(n_questions, len(questions)))
    passages: dict[str, dict[str, int]] = defaultdict(dict)  # asin -> text -> position
    for qid in chosen:
        for row in questions[qid]:
            passages[row["ASIN"]].setdefault(row["candidate"].strip(), len(passages[row["ASIN"]]))
    kb = open_kb("epqa", create=True)
    started = time.perf_counter()
    chunks = [
        Chunk(text=t, position=i, meta={"category": asin, "locale": "en"})
        for asin, texts in passages.items()
        for t, i in texts.items()
    ]
    kb.add_chunks("epqa", "document", "v1", chunks)  # one write: LanceDB versions per write add up
    n_chunks = sum(len(t) for t in passages.values())
    index_s = time.perf_counter() - started
    table: dict[str, dict[str, float]] = {}
    for scope in ("product", "global"):
        for mode in ("vector", "keyword", "hybrid"):
            hits_at = {k: 0 for k in KS}
            for qid in chosen:
                rows = questions[qid]
                gold = {r["candidate"].strip() for r in rows if r["label"] == "2"}
                where = {"category": rows[0]["ASIN"]} if scope == "product" else None
                found = [h.text for h in search(kb, rows[0]["question"], k=max(KS), where=where, mode=mode)]
                for k in KS:
                    hits_at[k] += any(t in gold for t in found[:k])
            table[f"{scope}/{mode}"] = {f"recall@{k}": hits_at[k] / len(chosen) for k in KS}
    return {
        "questions": len(chosen),
        "products": len(passages),
        "chunks": n_chunks,
        "index_s": round(index_s, 1),
        "recall": table,
    }


# -- few-shot examples for attributes --------------------------------------------------------------------


def _spread(items: list[Any], n: int) -> list[Any]:
    """n items taken round-robin over categories, in file order within each."""
    by_cat: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        by_cat[item.category].append(item)
    out: list[Any] = []
    while len(out) < n and any(by_cat.values()):
        for cat in sorted(by_cat):
            if by_cat[cat] and len(out) < n:
                out.append(by_cat[cat].pop(0))
    return out


class RecipeStep:
    """A recipe loaded from a file, shaped like skuforge.eval.runner.AttributesStep."""

    def __init__(self, path: Path) -> None:
        from skuforge.recipes import load_recipe

        self.recipe = load_recipe(str(path))
        self.step = self.recipe.steps[0]

    def build_request(self, row: dict[str, Any], *, params: dict[str, Any], row_label: str) -> Any:
        resolved = self.recipe.resolve_params(params)
        return self.step.build_request(row, outputs={}, variant={}, params=resolved, row_label=row_label)

    def parse(self, text: str, schema: dict[str, Any] | None = None) -> Any:
        return self.step.parse(text, schema)


def examples_variant(folder: Path) -> Path:
    """The built-in attributes recipe, renamed, with `{{ examples(k=3) }}` at the end of its instruction."""
    from skuforge.recipes import BUILTIN_DIR

    text = (Path(BUILTIN_DIR) / "attributes.yaml").read_text(encoding="utf-8")
    text = text.replace("name: attributes\n", "name: attributes_examples\n", 1)
    marker = "  {% endfor %}\n"
    assert marker in text, "the attributes recipe changed: update examples_variant()"
    text = text.replace(marker, marker + "  {{ examples(k=3) }}\n", 1)
    path = folder / "attributes_examples.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def fewshot(dataset: str, n: int, model: str) -> dict[str, Any]:
    """Normalised micro F1 of the attributes recipe with k=0 and k=3 retrieved approved examples."""
    from skuforge.eval import fill_absent, load_gold
    from skuforge.eval.runner import AttributesStep, evaluate
    from skuforge.knowledge import open_kb
    from skuforge.knowledge.chunking import Chunk
    from skuforge.knowledge.prompts import row_text
    from skuforge.knowledge.retrieval import examples_kb
    from skuforge.providers import get_provider

    home = Path(_fresh_home())
    folder = data_dir(dataset)
    every = fill_absent(load_gold(folder / "train.jsonl"))
    test_titles = [i.row["title"] for i in load_gold(folder / "train_0.2.jsonl")]
    by_title = {i.row["title"]: i for i in every}
    tests = _spread([by_title[t] for t in dict.fromkeys(test_titles) if t in by_title], n)
    held = {i.row["title"] for i in tests}
    pool = [i for i in every if i.row["title"] not in held]
    started = time.perf_counter()
    chunks = []  # what add_approved_example stores, written in one go (one call per example is slow)
    for item in pool:
        answer = {a: (v[0] if v else None) for a, v in item.attributes.items()}
        chunk = Chunk(text=row_text(item.row), position=len(chunks))
        chunk.meta.update(category="", locale="", row_id=f"{dataset}/{item.id}", data=json.dumps(answer))
        chunks.append(chunk)
    open_kb(examples_kb("attributes_examples"), create=True).add_chunks(dataset, "example", "v1", chunks)
    index_s = time.perf_counter() - started
    variant = RecipeStep(examples_variant(home))
    out: dict[str, Any] = {
        "dataset": dataset,
        "items": len(tests),
        "pool": len(pool),
        "index_s": round(index_s),
    }
    for label, step in (("k=0", AttributesStep()), ("k=3", variant)):

        async def go(step: Any = step) -> dict[str, Any]:
            provider = get_provider(model)
            async with provider:
                return await evaluate(tests, provider, concurrency=1, step=step)

        t0 = time.perf_counter()
        report = asyncio.run(go())
        micro = report["scores"]["normalised"]["micro"]
        out[label] = {
            "f1": micro["f1"],
            "precision": micro["precision"],
            "recall": micro["recall"],
            "errors": len(report["errors"]),
            "s_per_item": round((time.perf_counter() - t0) / max(len(tests), 1), 1),
        }
        print(f"  {dataset} {label}: F1 {micro['f1']:.3f}", file=sys.stderr, flush=True)
    return out


# -- product Q&A -----------------------------------------------------------------------------------------


def _attribute(candidate: str) -> tuple[str, str] | None:
    """`color:  { value:"white" }` -> ("color", "white"); with a unit when one is given."""
    name, _, rest = candidate.partition(":")
    values = re.findall(r'value:\s*("([^"]*)"|[^,}\s]+)', rest)
    if not name.strip() or not values:
        return None
    quoted, plain = values[-1][1], values[-1][0]
    unit = re.search(r"unit:\s*(\w+)", rest)
    value = (quoted or plain.strip('"')) + (f" {unit.group(1)}" if unit else "")
    return name.strip(), value


def qa_row(rows: list[dict[str, str]]) -> dict[str, str]:
    """The product as a catalog row: the title, then the question's candidate passages as named fields."""
    row = {"id": rows[0]["ASIN"], "title": rows[0]["title"]}
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        parsed = _attribute(r["candidate"]) if r["source"] == "attribute" else None
        if parsed:
            row[parsed[0]] = parsed[1]
            continue
        base = SOURCE_FIELD.get(r["source"], r["source"])
        counts[base] += 1
        row[f"{base}_{counts[base]}"] = r["candidate"].strip()
    row["question"] = rows[0]["question"]
    return row


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOP]


def token_f1(guess: str, gold: str) -> float:
    g, r = _tokens(guess), _tokens(gold)
    common = sum(min(g.count(t), r.count(t)) for t in set(g))
    if not g or not r or not common:
        return 0.0
    p, q = common / len(g), common / len(r)
    return 2 * p * q / (p + q)


def _polarity(text: str) -> str | None:
    first = re.match(r"\W*(yes|no)\b", text.strip().lower())
    return first.group(1) if first else None


def qa(n: int, model: str, seed: int = 0) -> dict[str, Any]:
    """Answer ePQA questions with the `qa` recipe; answerable ones scored against the human answer."""
    from skuforge.errors import OutputError, ProviderError
    from skuforge.knowledge.qa import ask_row_async
    from skuforge.providers import get_provider

    questions = epqa_questions()
    answerable = [
        q for q, rows in questions.items()
        if any(r["label"] == "2" and r["answer"].strip() for r in rows)
    ]  # fmt: skip
    unanswerable = [q for q, rows in questions.items() if all(r["label"] == "0" for r in rows)]
    rng = random.Random(seed)
    picked = [(q, True) for q in rng.sample(sorted(answerable), n // 2)]
    picked += [(q, False) for q in rng.sample(sorted(unanswerable), n - n // 2)]
    results: list[dict[str, Any]] = []

    async def go() -> None:
        provider = get_provider(model)
        async with provider:
            for qid, can in picked:
                rows = questions[qid]
                try:
                    out = await ask_row_async(qa_row(rows), model=model, provider=provider)
                except (ProviderError, OutputError) as exc:
                    out = {"answer": "", "answerable": None, "error": exc.message}
                gold = (
                    next(r["answer"] for r in rows if r["label"] == "2" and r["answer"].strip())
                    if can
                    else ""
                )
                results.append({"qid": qid, "answerable_gold": can, "gold": gold, **out})
                print(f"  qa {len(results)}/{len(picked)}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    asyncio.run(go())
    return _qa_scores(results, time.perf_counter() - t0)


def _qa_scores(results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ans = [r for r in results if r["answerable_gold"]]
    una = [r for r in results if not r["answerable_gold"]]
    correct = 0
    f1s = []
    for r in ans:
        f1 = token_f1(r.get("answer") or "", r["gold"])
        f1s.append(f1)
        gold_pol = _polarity(r["gold"])
        ok = _polarity(r.get("answer") or "") == gold_pol if gold_pol else f1 >= 0.3
        r["correct"] = bool(r.get("answerable") is True and ok)
        correct += r["correct"]
    declined = sum(r.get("answerable") is False for r in una)
    return {
        "answerable": len(ans),
        "answered_correctly": correct / max(len(ans), 1),
        "said_answerable": sum(r.get("answerable") is True for r in ans) / max(len(ans), 1),
        "mean_token_f1": sum(f1s) / max(len(f1s), 1),
        "unanswerable": len(una),
        "declined": declined / max(len(una), 1),
        "errors": sum("error" in r for r in results),
        "s_per_question": round(seconds / max(len(results), 1), 1),
        "results": results,
    }


# -- output ----------------------------------------------------------------------------------------------


def print_tables(report: dict[str, Any]) -> None:
    if "retrieval" in report:
        r = report["retrieval"]
        print(
            f"\nRetrieval (ePQA): {r['questions']} questions, {r['products']} products, {r['chunks']} chunks"
        )
        print(f"{'scope/mode':<18}" + "".join(f"{'recall@' + str(k):>11}" for k in KS))
        for name, row in r["recall"].items():
            print(f"{name:<18}" + "".join(f"{row[f'recall@{k}']:>11.3f}" for k in KS))
    for f in report.get("fewshot", []):
        print(f"\nFew-shot attributes, {f['dataset']} ({f['items']} products, pool {f['pool']}):")
        print(f"{'':<6}{'F1':>8}{'P':>8}{'R':>8}{'errors':>8}{'s/item':>8}")
        for label in ("k=0", "k=3"):
            s = f[label]
            print(
                f"{label:<6}{s['f1']:>8.3f}{s['precision']:>8.3f}{s['recall']:>8.3f}"
                f"{s['errors']:>8}{s['s_per_item']:>8}"
            )
    if "qa" in report:
        q = report["qa"]
        print(f"\nProduct Q&A (ePQA, {q['answerable']} answerable + {q['unanswerable']} unanswerable):")
        print(f"  answerable answered correctly  {q['answered_correctly']:.3f}")
        print(f"  answerable said answerable     {q['said_answerable']:.3f}")
        print(f"  mean token F1 vs human answer  {q['mean_token_f1']:.3f}")
        print(f"  unanswerable declined          {q['declined']:.3f}")
        print(f"  errors {q['errors']}, {q['s_per_question']} s per question")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["retrieval", "fewshot", "qa", "all"])
    parser.add_argument("--n", type=int, default=40, help="products (fewshot) or questions (qa)")
    parser.add_argument("--questions", type=int, default=300, help="questions for retrieval")
    parser.add_argument("--model", default="local:qwen2.5-0.5b")
    parser.add_argument("--datasets", default="oa-mine-extractgpt,ae-110k-extractgpt")
    parser.add_argument("--json", help="also write the full report (with every answer) here")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"model": args.model}
    if args.part in ("retrieval", "all"):
        report["retrieval"] = retrieval(args.questions)
        print_tables({"retrieval": report["retrieval"]})
    if args.part in ("fewshot", "all"):
        report["fewshot"] = [fewshot(d, args.n, args.model) for d in args.datasets.split(",")]
        print_tables({"fewshot": report["fewshot"]})
    if args.part in ("qa", "all"):
        report["qa"] = qa(args.n, args.model)
        print_tables({"qa": report["qa"]})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
