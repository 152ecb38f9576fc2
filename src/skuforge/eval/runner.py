"""Run an attribute-completion evaluation: gold items -> the `attributes` recipe -> a provider -> scores.

Each gold item becomes one request built by the built-in `attributes` recipe, asked for the attributes of the
item's category. Requests run concurrently (bounded, so a local model or a rate-limited API is not flooded);
an item whose call or parse fails counts as predicting nothing and is listed in the report's `errors`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skuforge.errors import MissingFieldError, OutputError, ProviderError
from skuforge.eval.loaders import GoldItem, fill_absent, load_gold
from skuforge.eval.report import write_report
from skuforge.eval.scoring import outcome, score

RECIPE = "attributes"


class AttributesStep:
    """The built-in `attributes` recipe's step, with the recipe's parameters resolved per request."""

    def __init__(self) -> None:
        from skuforge.recipes import load_recipe

        self.recipe = load_recipe(RECIPE)
        self.step = self.recipe.steps[0]

    def build_request(self, row: dict[str, Any], *, params: dict[str, Any], row_label: str) -> Any:
        resolved = self.recipe.resolve_params(params)
        return self.step.build_request(row, outputs={}, variant={}, params=resolved, row_label=row_label)

    def parse(self, text: str, schema: dict[str, Any] | None = None) -> Any:
        return self.step.parse(text, schema)


def pick_shots(item: GoldItem, pool: list[GoldItem], k: int, seed: int = 0) -> list[GoldItem]:
    """K demonstrations from the same category, never the item itself, the same for every run."""
    same = [p for p in pool if p.category == item.category and p.id != item.id]
    rng = random.Random(f"{seed}:{item.id}")
    return rng.sample(same, min(k, len(same)))


def with_shots(step: Any, request: Any, shots: list[GoldItem], params: dict[str, Any]) -> Any:
    """The request with demonstrations before the product: each shot's data turn and its gold answer.

    The shot's user turn is built by the same recipe step, so demonstrations look exactly like the real input.
    """
    import orjson

    from skuforge.providers.base import Message

    turns: list[Message] = []
    for shot in shots:
        shot_request = step.build_request(shot.row, params=params, row_label=shot.id)
        if shot_request is None:
            continue
        answer = {name: (values[0] if values else None) for name, values in shot.attributes.items()}
        answer = {name: answer.get(name) for name in params["attributes"]}
        turns += [shot_request.messages[-1], Message(role="assistant", content=orjson.dumps(answer).decode())]
    messages = [*request.messages[:-1], *turns, request.messages[-1]]
    return request.model_copy(update={"messages": messages})


def predictions(parsed: Any, names: list[str]) -> dict[str, Any]:
    """The attribute values in a parsed answer, matched to the asked names case-insensitively.

    Accepts a flat object (`{"Brand": "Crocs"}`) or one nested under `attributes`.
    """
    if isinstance(parsed, dict) and isinstance(parsed.get("attributes"), dict):
        parsed = parsed["attributes"]
    if not isinstance(parsed, dict):
        return {}
    folded = {str(k).strip().casefold(): v for k, v in parsed.items()}
    return {name: folded.get(name.casefold()) for name in names}


async def predict_one(
    step: Any, provider: Any, item: GoldItem, shots: list[GoldItem], sem: asyncio.Semaphore
) -> tuple[dict[str, Any], str | None]:
    """(predictions, error) for one item; provider and parse failures become an error, never an exception."""
    params: dict[str, Any] = {"attributes": list(item.attributes)}
    try:
        request = step.build_request(item.row, params=params, row_label=item.id)
    except MissingFieldError as exc:
        return {}, exc.message
    if request is None:
        return {}, "the recipe made no request for this item"
    if shots:
        request = with_shots(step, request, shots, params)
    async with sem:
        try:
            result = await provider.generate(request)
            parsed = step.parse(result.text, request.json_schema)
        except (ProviderError, OutputError) as exc:
            return {}, exc.message
    return predictions(parsed, list(item.attributes)), None


def mistakes(items: list[GoldItem], preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item, pred in zip(items, preds, strict=True):
        for name, gold in item.attributes.items():
            kind = outcome(gold, pred.get(name), normalised=True)
            if kind in ("nv", "vn", "vw"):
                label = {"nv": "invented", "vn": "missed", "vw": "wrong"}[kind]
                out.append(
                    {
                        "id": item.id,
                        "attribute": name,
                        "gold": gold or "n/a",
                        "predicted": pred.get(name),
                        "kind": label,
                    }
                )
    return out


async def evaluate(
    items: list[GoldItem],
    provider: Any,
    *,
    shots: int = 0,
    pool: list[GoldItem] | None = None,
    concurrency: int = 4,
    step: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Predict every item and score; returns the report dict (scores, mistakes, errors, predictions)."""
    step = step or AttributesStep()
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(item: GoldItem) -> tuple[dict[str, Any], str | None]:
        nonlocal done
        answer = await predict_one(step, provider, item, pick_shots(item, pool or [], shots), sem)
        done += 1
        if progress:
            progress(done, len(items))
        return answer

    answers = await asyncio.gather(*(one(item) for item in items))
    preds = [p for p, _ in answers]
    scores = score([(item.attributes, p) for item, p in zip(items, preds, strict=True)])
    return {
        "scores": {mode: s.summary() for mode, s in scores.items()},
        "mistakes": mistakes(items, preds),
        "errors": [{"id": item.id, "error": e} for item, (_, e) in zip(items, answers, strict=True) if e],
        "predictions": [{"id": item.id, "predicted": p} for item, p in zip(items, preds, strict=True)],
    }


def run_eval(
    gold: str | Path,
    model: str,
    *,
    fmt: str | None = None,
    limit: int | None = None,
    shots: int = 0,
    concurrency: int = 4,
    out: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Load gold data, evaluate `model` on the first `limit` items, write the report when `out` is given.

    Demonstrations (`shots`) are drawn from the gold items after the evaluated ones, never the item itself.
    """
    from skuforge.providers import get_provider

    every = fill_absent(load_gold(gold, fmt))
    items = every[:limit] if limit else every
    pool = every[len(items) :] if shots else []
    provider = get_provider(model)
    started = time.perf_counter()

    async def go() -> dict[str, Any]:
        async with provider:
            return await evaluate(
                items, provider, shots=shots, pool=pool, concurrency=concurrency, progress=progress
            )

    report = asyncio.run(go())
    report["meta"] = {
        "gold": str(gold),
        "format": fmt or "detected",
        "model": model,
        "items": len(items),
        "shots": shots,
        "attributes": len({a for i in items for a in i.attributes}),
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_per_item": round((time.perf_counter() - started) / max(len(items), 1), 2),
    }
    if out:
        html_path, json_path = write_report(report, out)
        report["meta"]["report"] = str(html_path)
        report["meta"]["json"] = str(json_path)
    return report
