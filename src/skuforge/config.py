"""Settings: flags override environment variables, which override the config file, which overrides defaults.

The config file is `$SKUFORGE_HOME/config.yaml` (or the path in `SKUFORGE_CONFIG`). Keys never live in it
by value: a provider section names the environment variable that holds its key (`api_key_env`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from skuforge import yamlfile
from skuforge.errors import ConfigError

DEFAULT_MODEL = "local:qwen2.5-0.5b"


def home() -> Path:
    """The directory that holds the store, caches and user recipes (`SKUFORGE_HOME`, default ~/.skuforge)."""
    path = Path(os.environ.get("SKUFORGE_HOME") or Path.home() / ".skuforge").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Where assembled models and built wheels live, outside the repo: SKUFORGE_CACHE or ~/.cache/skuforge."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skuforge"
    path = Path(os.environ.get("SKUFORGE_CACHE") or default).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


class Limits(BaseModel):
    """Call limits applied by the wrappers around a provider."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(16, ge=1)
    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute")
    timeout_s: float = Field(120.0, gt=0, description="per request")
    max_retries: int = Field(6, ge=0)
    hedge_share: float = Field(
        0.05, ge=0, le=0.5, description="at most this share of requests to a server get a 2nd copy (0: off)"
    )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    store: str | None = Field(None, description="database URL; default sqlite under SKUFORGE_HOME")
    recipe_dirs: list[Path] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    cache: bool = True
    prices: Path | None = Field(None, description="a YAML file of prices that overrides the shipped table")
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def store_url(self) -> str:
        return self.store or os.environ.get("SKUFORGE_STORE") or f"sqlite:///{home() / 'skuforge.db'}"


def load_settings(path: Path | None = None) -> Settings:
    """Read the optional config file; a mistake in it names the file and the key."""
    path = path or Path(os.environ.get("SKUFORGE_CONFIG") or home() / "config.yaml")
    if not path.exists():
        return Settings()
    try:
        data = yamlfile.load(path.read_text(encoding="utf-8")) or {}
        return Settings.model_validate(data)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"Config file {path} is not valid: {exc}", "Fix the file or remove it.") from exc
