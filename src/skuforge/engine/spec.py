"""What a job is made of: catalog, selection, recipe, model, params and call settings.

The job fingerprint hashes the spec (not the catalog's contents, not the recipe's text), so running the same
command again continues the same job: rows whose rendered prompts changed are regenerated, the rest are not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from skuforge.config import Limits


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sheet: str | int | None = None
    header_row: int = 1
    id_column: str | None = None
    encoding: str | None = None
    where: str | None = None
    limit: int | None = Field(None, ge=1)
    sample: int | None = Field(None, ge=1)
    seed: int = 0


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog: str
    recipe: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    selection: Selection = Field(default_factory=Selection)
    limits: Limits = Field(default_factory=Limits)
    cache: bool = True
    max_cost: float | None = Field(None, ge=0)
    review_sample: float = Field(0.0, ge=0, le=1, description="share of clean items also sent to review")
    recipe_dirs: list[str] = Field(default_factory=list)
    out: str | None = None
    kind: str = "run"
    mode: Literal["online", "batch"] = Field(
        "online", description="online requests, or the provider's batch API (half price, hours)"
    )
    executor: Literal["local", "ray"] = Field("local", description="this process, or Ray Data")
    ray_address: str | None = Field(None, description="an existing Ray cluster; none starts a local one")
    price: str | None = Field(None, description="IN/OUT[/CACHED] USD per 1M tokens for the job's model")

    @classmethod
    def create(cls, catalog: str | Path, **fields: Any) -> JobSpec:
        return cls(catalog=str(Path(catalog).expanduser().resolve()), **fields)

    def fingerprint(self) -> str:
        body = {
            "catalog": self.catalog,
            "recipe": self.recipe,
            "model": self.model,
            "params": self.params,
            "selection": self.selection.model_dump(),
            "kind": self.kind,
        }
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def job_fields(self) -> dict[str, Any]:
        """The store's fields for a job made from this spec (`store.create_job(**spec.job_fields())`)."""
        return {
            "kind": self.kind,
            "catalog": self.catalog,
            "recipe": self.recipe,
            "fingerprint": self.fingerprint(),
            "model": self.model,
            "params": self.params,
            "selection": self.selection.model_dump(),
            "settings": self.settings_blob(),
            "out": self.out,
        }

    def settings_blob(self) -> dict[str, Any]:
        """What the store keeps besides the spec's top-level fields; keys stay in the environment."""
        return {
            "limits": self.limits.model_dump(),
            "cache": self.cache,
            "max_cost": self.max_cost,
            "recipe_dirs": self.recipe_dirs,
            "review_sample": self.review_sample,
            "mode": self.mode,
            "executor": self.executor,
            "ray_address": self.ray_address,
            "price": self.price,
        }

    @classmethod
    def from_job(cls, job: Any) -> JobSpec:
        settings = job.settings or {}
        return cls(
            catalog=job.catalog,
            recipe=job.recipe,
            model=job.model,
            params=job.params,
            selection=Selection(**job.selection),
            limits=Limits(**settings.get("limits", {})),
            cache=settings.get("cache", True),
            max_cost=settings.get("max_cost"),
            recipe_dirs=settings.get("recipe_dirs", []),
            out=job.out,
            kind=job.kind,
            review_sample=settings.get("review_sample", 0.0),
            mode=settings.get("mode", "online"),
            executor=settings.get("executor", "local"),
            ray_address=settings.get("ray_address"),
            price=settings.get("price"),
        )
