"""What every request handler and the worker share: the store, the settings and the service's options.

One `ServiceContext` per app; handlers get it from `request.app.state.ctx`. Keeping it a plain object (not
module globals) lets tests build as many apps as they like, each with its own home and store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from skuforge import config
from skuforge.config import Settings, load_settings
from skuforge.store import Store, open_store

DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024


@dataclass
class ServiceOptions:
    """How the service behaves; `skuforge serve` flags and the environment fill it."""

    token: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    secure_cookies: bool = True
    run_worker: bool = True
    worker_concurrency: int = 1
    worker_poll_s: float = 0.5
    lease_s: float = 60.0
    trial_rows: int = 20
    models: list[str] = field(default_factory=list)
    ray_address: str | None = field(default_factory=lambda: os.environ.get("SKUFORGE_RAY_ADDRESS") or None)
    """The Ray cluster jobs may run on (auto, ray://head:10001, or local); None: Ray is not offered."""


@dataclass
class ServiceContext:
    options: ServiceOptions
    settings: Settings
    store: Store
    home: Path

    @property
    def catalogs_dir(self) -> Path:
        return _mkdir(self.home / "catalogs")

    @property
    def exports_dir(self) -> Path:
        return _mkdir(self.home / "exports")

    @property
    def recipes_dir(self) -> Path:
        return _mkdir(self.home / "recipes")

    def model_value(self) -> str:
        """What the console's model field starts with: the config file's model, or empty, which lets each
        recipe run on its own default (`providers.choice`: translate on the 1.5B model when installed)."""
        return self.settings.model if "model" in self.settings.model_fields_set else ""

    def model_choices(self) -> list[str]:
        """Models offered in the console: the configured default first, then the options, then `fake:`."""
        names = [self.settings.model, *self.options.models, config.DEFAULT_MODEL, "fake:"]
        return list(dict.fromkeys(names))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_context(
    options: ServiceOptions, store_url: str | None = None, settings: Settings | None = None
) -> ServiceContext:
    settings = settings or load_settings()
    store = open_store(store_url or settings.store_url())
    return ServiceContext(options=options, settings=settings, store=store, home=config.home())


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx
