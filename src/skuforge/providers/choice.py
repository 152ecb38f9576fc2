"""Which model a run uses when it names none.

The order: the model the run names (`--model`, the request's `model`); else the `model:` of the config
file; else the recipe's own `local_model:` (the packaged model it was measured best with, e.g. translate on
qwen2.5-1.5b) when that model is installed; else the default local model. The choice is made once, when the
job is created, and stored with it, so a resumed job keeps its model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from skuforge.config import Settings
from skuforge.providers import local_models

if TYPE_CHECKING:
    from skuforge.recipes import Recipe


@dataclass(frozen=True)
class ModelChoice:
    model: str
    note: str | None = None
    """What the user should know about the choice (the recipe's model chosen, or missing), or None."""


def choose_model(given: str | None, settings: Settings, recipe: Recipe) -> ModelChoice:
    """The model for a run of `recipe`; `given` is the model the run names (None: it names none)."""
    if given:
        return ModelChoice(given)
    if "model" in settings.model_fields_set:
        return ModelChoice(settings.model)
    preferred, name = recipe.spec.local_model, recipe.name
    if not preferred or f"local:{preferred}" == settings.model:
        return ModelChoice(settings.model)
    if local_models.is_installed(preferred):
        return ModelChoice(
            f"local:{preferred}",
            f"{name} runs on local:{preferred}, the local model it is measured best with "
            "(--model chooses another).",
        )
    spec = local_models.get_spec(preferred)
    return ModelChoice(
        settings.model,
        f"{name} is measured best on local:{preferred}, which is not installed; running on "
        f"{settings.model}. Install it with: {spec.pip_line()} && skuforge models install {preferred}",
    )
