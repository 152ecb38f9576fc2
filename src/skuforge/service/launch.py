"""How a job may run, as the service offers it: online or provider batch, local or Ray.

The engine picks the runner from the job's spec (`mode`, `executor`, `ray_address`; see
`skuforge.engine.executors`). The service only decides what it offers and refuses what cannot work, before
anything is queued:

- batch needs a provider with a batch API (openai, anthropic, qwen profiles) and runs in the worker
  process (not on Ray); a trial always runs online, because it must answer in minutes;
- Ray is offered only when the service is configured for a cluster: `SKUFORGE_RAY_ADDRESS=auto`,
  `ray://head:10001`, or `local` (a Ray instance started inside the worker, for a single big machine).

`choices()` redraws a trial's projection for each option: batch costs the price table's batch rate (half
on the shipped providers) and finishes within the provider's 24-hour window rather than at the online
rate limits; Ray shares the same provider limits across the cluster, so its money and rate-bound time are
the online ones.
"""

from __future__ import annotations

from typing import Any

from skuforge.config import Settings
from skuforge.engine.executors import check_choice
from skuforge.errors import UserError
from skuforge.service.errors import ApiError

MODES = ("online", "batch")
EXECUTORS = ("local", "ray")
BATCH_WINDOW_S = 24 * 3600
"""The completion window both OpenAI Batch and Anthropic Message Batches promise."""
LOCAL_RAY = "local"
"""SKUFORGE_RAY_ADDRESS value that starts Ray inside the worker instead of joining a cluster."""


def batch_support(model: str, settings: Settings) -> str | None:
    """None when the model's provider has a batch API, else why not (a sentence for the operator)."""
    from skuforge.providers.registry import profiles

    provider = model.partition(":")[0].strip().lower()
    profile = profiles(settings).get(provider)
    if profile is not None and profile.capabilities.batch:
        return None
    return f"'{model}' has no batch API; batch mode needs openai, anthropic or qwen models."


def batch_discount(model: str, settings: Settings) -> float | None:
    """The price table's batch factor for the model (0.5 = half price), or None when it has none."""
    from skuforge.providers.prices import price_for

    price = price_for(model, settings.prices)
    return price.batch_discount if price is not None else None


def check_launch(
    mode: str, executor: str, *, model: str, kind: str, settings: Settings, ray_address: str | None
) -> None:
    """Refuse an option the service cannot honour, with what to do instead."""
    try:
        check_choice(mode, executor)
    except UserError as exc:
        raise ApiError(422, exc.message, exc.hint, code="validation_error") from exc
    if mode == "batch" and kind == "trial":
        raise ApiError(
            422,
            "A trial runs online, so that it answers in minutes.",
            "Run the trial online; choose batch when you launch the full run.",
            code="validation_error",
        )
    if mode == "batch" and (why := batch_support(model, settings)):
        hint = "Choose online, or a model whose provider has a batch API."
        raise ApiError(422, why, hint, code="validation_error")
    if executor == "ray" and not ray_address:
        raise ApiError(
            422,
            "This service is not configured for a Ray cluster.",
            "Start `skuforge serve` (or `skuforge worker`) with SKUFORGE_RAY_ADDRESS=auto, ray://HOST:10001 "
            "or local, and install skuforge[ray]; or run on the local executor.",
            code="validation_error",
        )


def spec_fields(mode: str, executor: str, ray_address: str | None) -> dict[str, Any]:
    """The JobSpec fields for a checked choice: the cluster's address goes in only for Ray."""
    address = ray_address if executor == "ray" and ray_address != LOCAL_RAY else None
    return {"mode": mode, "executor": executor, "ray_address": address}


def choices(
    projection: dict[str, Any] | None, model: str, settings: Settings, ray_address: str | None
) -> list[dict[str, Any]]:
    """Each way to run the full run, with the trial's projection redrawn for it (cost, time bound)."""
    pr = projection or {}
    online = {
        "cost_expected": pr.get("projected_cost", pr.get("cost_expected")),
        "cost_low": pr.get("cost_low"),
        "cost_high": pr.get("cost_high"),
        "wall_s": pr.get("wall_s"),
        "wall_bound": pr.get("wall_bound"),
        "within_s": None,
    }
    factor = batch_discount(model, settings)
    batch = {
        **{k: None if v is None else v * (factor or 1.0) for k, v in online.items() if k.startswith("cost")},
        "wall_s": None,
        "wall_bound": "batch window",
        "within_s": BATCH_WINDOW_S,
        "discount": factor,
    }
    no_batch = batch_support(model, settings)
    return [
        {"mode": "online", "executor": "local", "available": True, "reason": None, **online},
        {"mode": "batch", "executor": "local", "available": no_batch is None, "reason": no_batch, **batch},
        {
            "mode": "online",
            "executor": "ray",
            "available": bool(ray_address),
            "reason": None if ray_address else "the service is not configured for a Ray cluster",
            **online,
        },
    ]


def plan(job: Any, parent_projection: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """What a run was launched against: the trial's projected cost for the run's mode, and its budget."""
    job_settings = job.settings or {}
    mode = job_settings.get("mode", "online")
    projected = (parent_projection or {}).get("projected_cost")
    if projected is not None and mode == "batch":
        projected *= batch_discount(job.model, settings) or 1.0
    return {
        "mode": mode,
        "executor": job_settings.get("executor", "local"),
        "projected_cost": projected,
        "budget": job_settings.get("max_cost"),
        "within_s": BATCH_WINDOW_S if mode == "batch" else None,
    }
