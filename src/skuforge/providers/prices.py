"""Token prices per `provider:model`, shipped as data (prices.yaml) and overridable by the user.

The shipped table is merged with `$SKUFORGE_HOME/prices.yaml` when present and then with an explicit override
file, field by field, so a user can correct one price or add a model without copying the table. The table also
names the models the registry knows, so adding a price is how a user teaches skuforge a new model.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skuforge.config import home
from skuforge.errors import ConfigError
from skuforge.providers.base import Usage

_DATED = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class Price(BaseModel):
    """USD per 1M tokens. `cached_input` defaults to `input`; `batch_discount` is None without a batch API."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    batch_discount: float | None = Field(None, gt=0, le=1)
    aliases: tuple[str, ...] = ()

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """Cost in USD of one call's usage; `batch=True` applies the batch discount where there is one."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = (
            (usage.input_tokens - cached) * self.input
            + cached * cached_rate
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
    models: dict[str, Price]

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
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
    data: dict[str, Any] = yaml.safe_load(shipped)
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


def price_for(model: str, overrides: Path | None = None) -> Price | None:
    """The price of `provider:model`, or None when the table has no entry (cost then unknown, not zero)."""
    return load_prices(overrides).lookup(model)
