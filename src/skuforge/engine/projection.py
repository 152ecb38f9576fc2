"""What the full run will cost and how long it will take, projected from a trial's measured items.

A trial runs N sampled products; each finished item carries its measured input and output tokens (exact for
the local model, the provider's own usage for hosted ones). The projection prices those tokens with the
price table (so a trial answered from the response cache still projects the real price), takes the mean and
spread per item, and scales to the rows of the full selection:

    expected = M x mean cost per item
    90% range = expected +- 1.645 x sqrt(M x s^2 + M^2 x s^2 / n x (1 - n / N))

The first term is the item-to-item spread of a sum of M items, the second the uncertainty of the sample
mean itself (with the finite-population correction: a sample of the whole selection knows it exactly).
M counts the items still to send: the trial's own items are answered by the response cache in the full
run, so they cost nothing there. Wall time is the slowest of three ceilings: concurrency x measured latency,
requests per minute, tokens per minute.

Prompt caching: each item's input tokens are priced as the provider reported them, the share read from its
prompt cache at the cached rate, so the projection prices the measured hit share (`cache_hit_share`). The
first requests of a run miss the cache (nothing is cached yet), so a trial's share is a floor for the full
run's, and its projection errs on the high side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from skuforge.config import Limits
from skuforge.providers.base import Usage
from skuforge.providers.prices import Price, load_prices

Z90 = 1.645
MIN_ITEMS_FOR_LIVE = 20
"""Items a run finishes before the progress display shows a projected total."""


@dataclass(slots=True)
class ItemMeasure:
    """Tokens and attempts of one finished item (from the store or from the runner)."""

    input_tokens: int
    output_tokens: int
    requests: float = 1.0
    cached_tokens: int = 0


@dataclass(slots=True)
class Spread:
    """Mean and sample standard deviation of one per-item figure."""

    mean: float
    sd: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(0.0, 0.0)
        mean = math.fsum(values) / len(values)
        if len(values) < 2:
            return cls(mean, 0.0)
        var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return cls(mean, math.sqrt(var))


@dataclass(slots=True)
class Projection:
    """The projected full run. Money in the price table's currency; times in seconds."""

    model: str
    items_sampled: int
    rows_sampled: int
    rows_total: int | None
    items_total: int
    items_to_send: int
    input_tokens: Spread
    output_tokens: Spread
    cost_per_item: Spread
    cost_expected: float | None
    cost_low: float | None
    cost_high: float | None
    cost_full: float | None
    requests: int
    tokens_total: int
    latency_s: float | None
    wall_s: float | None
    wall_bound: str
    price_known: bool
    price_as_of: str
    currency: str
    notes: list[str] = field(default_factory=list)
    cache_hit_share: float | None = None
    """Share of the trial's input tokens read from the provider's prompt cache (priced at the cached rate)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_cost(price: Price | None, measure: ItemMeasure) -> float:
    """The list price of one item's tokens, whether or not it was answered from the cache."""
    if price is None:
        return 0.0
    usage = Usage(
        input_tokens=measure.input_tokens,
        output_tokens=measure.output_tokens,
        cached_input_tokens=measure.cached_tokens,
    )
    return price.cost(usage)


def interval(total_items: int, sampled: int, population: int, spread: Spread) -> tuple[float, float]:
    """(expected, half-width of the 90% interval) of the sum of `total_items` items' values."""
    expected = total_items * spread.mean
    if sampled == 0:
        return expected, 0.0
    fpc = max(0.0, 1.0 - sampled / population) if population else 1.0
    var = total_items * spread.sd**2 + total_items**2 * spread.sd**2 / sampled * fpc
    return expected, Z90 * math.sqrt(var)


def wall_time(
    requests: int, tokens_per_request: float, latency_s: float | None, limits: Limits
) -> tuple[float | None, str]:
    """Seconds for `requests` under the limits, and which ceiling binds (concurrency, rpm or tpm)."""
    bounds: dict[str, float] = {}
    if latency_s is not None:
        bounds["concurrency"] = requests * latency_s / max(1, limits.concurrency)
    if limits.rpm:
        bounds["rpm"] = requests / limits.rpm * 60.0
    if limits.tpm:
        bounds["tpm"] = requests * tokens_per_request / limits.tpm * 60.0
    if not bounds:
        return None, "unknown"
    bound = max(bounds, key=lambda name: bounds[name])
    return bounds[bound], bound


@dataclass(slots=True)
class Sample:
    """What a trial measured: its finished items, how many rows they came from, and the call latency."""

    items: list[ItemMeasure]
    rows: int
    latency_s: float | None = None


def project(
    sample: Sample,
    *,
    model: str,
    rows_total: int | None,
    limits: Limits,
    prices: Any = None,
    reused_items: int | None = None,
) -> Projection:
    """Project the full selection of `rows_total` rows from `sample`.

    `reused_items` are items the full run will not pay for (default: the sample's own, served by the cache).
    """
    table = load_prices(prices)
    price = table.lookup(model)
    measures = sample.items
    n = len(measures)
    per_row = n / sample.rows if sample.rows else 1.0
    items_total = round((rows_total if rows_total is not None else sample.rows) * per_row)
    reused = n if reused_items is None else reused_items
    to_send = max(0, items_total - reused)
    costs = Spread.of([item_cost(price, m) for m in measures])
    tin = Spread.of([float(m.input_tokens) for m in measures])
    tout = Spread.of([float(m.output_tokens) for m in measures])
    req_per_item = math.fsum(m.requests for m in measures) / n if n else 1.0
    expected, half = interval(to_send, n, max(items_total, n), costs)
    requests = math.ceil(to_send * req_per_item)
    tokens_per_request = (tin.mean + tout.mean) / req_per_item if req_per_item else 0.0
    wall, bound = wall_time(requests, tokens_per_request, sample.latency_s, limits)
    share = hit_share(measures)
    notes = _notes(price, model, rows_total, n) + _cache_notes(price, share)
    known = price is not None
    return Projection(
        model=model, items_sampled=n, rows_sampled=sample.rows, rows_total=rows_total,
        items_total=items_total, items_to_send=to_send, input_tokens=tin, output_tokens=tout,
        cost_per_item=costs, cost_expected=expected if known else None,
        cost_low=max(0.0, expected - half) if known else None, cost_high=expected + half if known else None,
        cost_full=items_total * costs.mean if known else None, requests=requests,
        tokens_total=round(to_send * (tin.mean + tout.mean)), latency_s=sample.latency_s, wall_s=wall,
        wall_bound=bound, price_known=known, price_as_of=table.as_of, currency=table.currency, notes=notes,
        cache_hit_share=share,
    )  # fmt: skip


def _notes(price: Price | None, model: str, rows_total: int | None, n: int) -> list[str]:
    notes = []
    if price is None:
        notes.append(
            f"No price for '{model}' in the price table: cost unknown. Add it to $SKUFORGE_HOME/prices.yaml."
        )
    if rows_total is None:
        notes.append("The size of the full selection is unknown: figures are for the sample only.")
    if 0 < n < 10:
        notes.append(
            f"Only {n} items measured: the range may understate the spread; a larger --sample firms it up."
        )
    return notes


def hit_share(measures: Sequence[ItemMeasure]) -> float | None:
    """Share of the measured input tokens read from the provider's prompt cache; None without input."""
    total = sum(m.input_tokens for m in measures)
    return sum(min(m.cached_tokens, m.input_tokens) for m in measures) / total if total else None


def _cache_notes(price: Price | None, share: float | None) -> list[str]:
    if price is None or not share or price.cached_input is None or price.cached_input >= price.input:
        return []
    return [
        f"{share:.0%} of the trial's input tokens were read from the provider's prompt cache: they are "
        f"priced at the cached rate ({price.cached_input:g} instead of {price.input:g} per 1M tokens)."
    ]


def live_projection(cost: float, new_items: int, all_items: int, items_total: int | None) -> float | None:
    """The run's projected total for the progress bar: spent + mean cost per item sent x items to go.

    `new_items` were finished by this run (they cost), `all_items` also counts those reused from an earlier
    run (free), `items_total` is rows x items per row. None until MIN_ITEMS_FOR_LIVE items are finished (a
    mean over a handful misleads) or while the size of the selection is unknown.
    """
    if items_total is None or new_items < MIN_ITEMS_FOR_LIVE:
        return None
    return cost + cost / new_items * max(0, items_total - all_items)


def count_selection(catalog: Any, where: str | None, limit: int | None = None) -> int:
    """Rows of the full selection: the catalog's own count, or a streaming DuckDB pass with `where`."""
    from skuforge.catalog import select

    total = catalog.count() if not where else sum(1 for _ in select(catalog, where=where))
    return min(total, limit) if limit is not None else total


def measures_from(records: Iterable[Any]) -> list[ItemMeasure]:
    """ItemMeasures from store ItemRecords that made (or were served) a model call."""
    out = []
    for record in records:
        if record.status == "skipped" or not (record.input_tokens or record.output_tokens):
            continue
        packed = (record.meta or {}).get("packed") if isinstance(record.meta, dict) else None
        requests = 1.0 / packed if packed else float(max(1, record.attempts))
        out.append(
            ItemMeasure(
                input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                requests=requests, cached_tokens=record.cached_tokens,
            )
        )  # fmt: skip
    return out
