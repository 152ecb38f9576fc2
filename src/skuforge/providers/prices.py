"""Token prices per `provider:model`, shipped as data (prices.yaml) and overridable by the user.

The shipped table is merged with `$SKUFORGE_HOME/prices.yaml` when present and then with an explicit override
file, field by field, so a user can correct one price or add a model without copying the table. Every shipped
entry names the page its figures were read from and the date. A model without a price still runs (its cost
is unknown, not zero); `require_price` refuses a budget (`--max-cost`) until a price is given, either in
prices.yaml or for one run with `--price IN/OUT` (`parse_price`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skuforge import yamlfile
from skuforge.config import Settings, home
from skuforge.errors import ConfigError, UserError
from skuforge.providers.base import Usage

_DATED = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class Price(BaseModel):
    """USD per 1M tokens. `cached_input` and `cache_write_input` default to `input`; `batch_discount` is None
    without a batch API. `source` and `read` say where and when the figures were read."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write_input: float | None = Field(None, ge=0)
    batch_discount: float | None = Field(None, gt=0, le=1)
    aliases: tuple[str, ...] = ()
    source: str | None = None
    read: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    vendor_page: bool = True
    note: str | None = None

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """Cost in USD of one call's usage; `batch=True` applies the batch discount where there is one."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write_input is None else self.cache_write_input
        total = (
            (usage.input_tokens - cached - written) * self.input
            + cached * cached_rate
            + written * write_rate
            + usage.output_tokens * self.output
        ) / 1_000_000
        if batch and self.batch_discount is not None:
            total *= self.batch_discount
        return total


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: str
    currency: str = "USD"
    unit: str = "per 1M tokens"
    source: str = ""
    notes: list[str] = Field(default_factory=list)
    models: dict[str, Price]

    def age_days(self, today: dt.date | None = None) -> int | None:
        """Days since `as_of` (the date the figures were read), or None when it is not a date."""
        try:
            read = dt.date.fromisoformat(self.as_of)
        except ValueError:
            return None
        return ((today or dt.date.today()) - read).days

    def lookup(self, model: str) -> Price | None:
        """Exact name, then an alias, then the undated name (`gpt-4o-mini-2024-07-18`), then `provider:*`."""
        if model in self.models:
            return self.models[model]
        provider, _, name = model.partition(":")
        for key, price in self.models.items():
            if key.startswith(f"{provider}:") and name in price.aliases:
                return price
        undated = _DATED.sub("", name)
        if undated != name and f"{provider}:{undated}" in self.models:
            return self.models[f"{provider}:{undated}"]
        return self.models.get(f"{provider}:*")

    def known_models(self, provider: str | None = None) -> list[str]:
        """Named models (no wildcards), optionally for one provider."""
        names = [k for k in self.models if not k.endswith(":*")]
        return [k for k in names if provider is None or k.startswith(f"{provider}:")]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yamlfile.load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"Price file {path} cannot be read: {exc}", "Fix the YAML or remove the file."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise ConfigError(
            f"Price file {path} must be a mapping with a 'models:' mapping of provider:model -> prices.",
            "See the shipped skuforge/providers/prices.yaml for the shape.",
        )
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in extra.items() if k != "models"}}
    models = {k: dict(v) for k, v in base.get("models", {}).items()}
    for name, fields in (extra.get("models") or {}).items():
        models[name] = {**models.get(name, {}), **(fields or {})}
    merged["models"] = models
    return merged


def _stamp(path: Path | None) -> tuple[str, int] | None:
    if path is None or not path.exists():
        return None
    return (str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load(user: tuple[str, int] | None, override: tuple[str, int] | None) -> PriceTable:
    shipped = resources.files("skuforge.providers").joinpath("prices.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yamlfile.load(shipped)
    for stamp in (user, override):
        if stamp is not None:
            data = _merge(data, _read(Path(stamp[0])))
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        where = override[0] if override else (user[0] if user else "the shipped table")
        raise ConfigError(
            f"Prices in {where} are not valid: {exc}", "Each model needs input and output."
        ) from exc


def load_prices(overrides: Path | None = None) -> PriceTable:
    """The shipped table merged with `$SKUFORGE_HOME/prices.yaml` and then `overrides` (cached by mtime)."""
    if overrides is not None and not Path(overrides).exists():
        raise ConfigError(
            f"Price override file {overrides} does not exist.",
            "Fix the 'prices:' path in your config, or remove it to use the shipped prices.",
        )
    return _load(_stamp(home() / "prices.yaml"), _stamp(Path(overrides) if overrides else None))


def price_for(model: str, overrides: Path | None = None, *, price: Price | None = None) -> Price | None:
    """The price of `provider:model`, or None when the table has no entry (cost then unknown, not zero).

    `price` (from `--price IN/OUT`, see `parse_price`) wins over the table."""
    return price if price is not None else load_prices(overrides).lookup(model)


_PRICE_FLAG = re.compile(r"^\s*\$?(\d+(?:\.\d+)?)\s*/\s*\$?(\d+(?:\.\d+)?)(?:\s*/\s*\$?(\d+(?:\.\d+)?))?\s*$")


def parse_price(text: str) -> Price:
    """`--price IN/OUT[/CACHED]`: USD per million input and output tokens (and cached input tokens)."""
    match = _PRICE_FLAG.match(text or "")
    if match is None:
        raise UserError(
            f"--price '{text}' is not IN/OUT.",
            "Give USD per million tokens as IN/OUT, e.g. --price 0.25/2.00 (a third figure, IN/OUT/CACHED, "
            "sets the cached-input price).",
        )
    cached = match.group(3)
    return Price(
        input=float(match.group(1)),
        output=float(match.group(2)),
        cached_input=float(cached) if cached is not None else None,
        source="--price",
    )


def price_line(model: str) -> str:
    """The prices.yaml line that gives `model` a price (IN and OUT to be filled in)."""
    return f'  "{model}": {{input: IN, output: OUT}}   # USD per 1M tokens, from the vendor\'s price page'


def require_price(model: str, settings: Settings | None = None, price: Price | None = None) -> Price:
    """The price of `model`, or a UserError saying exactly how to give one (for `--max-cost`)."""
    prices = settings.prices if settings is not None else None
    found = price_for(model, prices, price=price)
    if found is not None:
        return found
    target = prices or (home() / "prices.yaml")
    raise UserError(
        f"--max-cost needs a price for '{model}', and the price table has none.{guess_model(model, prices)}",
        f"Pass --price IN/OUT (USD per million input/output tokens), or add under 'models:' in {target}:\n"
        f"{price_line(model)}",
    )


def price_notes(model: str, settings: Settings | None = None) -> list[str]:
    """What to tell a user before a run about `model`'s price: nothing, or that its cost will be unknown."""
    prices = settings.prices if settings is not None else None
    if price_for(model, prices) is not None:
        return []
    return [
        f"No price for '{model}' in the price table: its cost will show as unknown."
        f"{guess_model(model, prices)} "
        f"To price it, pass --price IN/OUT or add to {prices or home() / 'prices.yaml'} under 'models:': "
        f"{price_line(model).strip()}"
    ]


def guess_model(model: str, overrides: Path | None = None) -> str:
    """' Did you mean ...?' for a model missing from the table: a hint, never a refusal."""
    provider = model.partition(":")[0]
    known = load_prices(overrides).known_models(provider)
    close = difflib.get_close_matches(model, known, n=1, cutoff=0.75)
    return f" Did you mean '{close[0]}'?" if close and close[0] != model else ""
