"""Packs load from YAML and installed word lists, layer in order, and fail with useful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import ConfigError, NotFoundError
from skuforge.safety import builtin_packs, competitor_pack, load_packs


def test_builtin_packs_are_versioned_and_read_word_lists_from_installed_packages() -> None:
    packs = builtin_packs()
    assert {"zh", "en", "pii"} <= set(packs)
    assert all(p.version for p in packs.values())
    zh_sensitive = [t for t in packs["zh"].terms() if t.category == "sensitive"]
    en_profanity = [t for t in packs["en"].terms() if t.category == "profanity"]
    assert len(zh_sensitive) > 1000 and len(en_profanity) > 500  # safetext / better-profanity lists
    assert not any(t.text in ("乳", "奶", "官方", "水晶") for t in zh_sensitive)  # documented exclusions
    assert not any(t.text in ("pot", "screw", "nipple") for t in en_profanity)


def test_a_later_pack_overrides_a_term_and_disables_others(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nversion: '1'\ngroups:\n  - {category: house, action: flag, terms: ['極品']}\n"
        "disable: ['free shipping']\n",
        encoding="utf-8",
    )
    packs = load_packs(["zh", "en"], extra=[tmp_path])
    [match] = packs.scan("极品 free shipping")
    assert (match.term, match.category, match.action, match.pack) == ("極品", "house", "flag", "mine")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("brands.txt", "# rivals\nAcme\nGlobexCorp\n"),
        ("brands.csv", "brand,country\nAcme,US\nGlobexCorp,US\n"),
        ("brands.yaml", "brands: [Acme, GlobexCorp]\n"),
    ],
)
def test_competitor_lists_load_from_text_csv_and_yaml(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    pack = competitor_pack(path)
    assert sorted(t.text for t in pack.terms()) == ["Acme", "GlobexCorp"]
    found = load_packs([], competitors=path).scan("works like ACME, not like acmeware")
    assert [(m.text, m.category) for m in found] == [("ACME", "competitor")]


def test_unknown_pack_names_the_known_ones() -> None:
    with pytest.raises(NotFoundError) as exc:
        load_packs(["zh", "fr"])
    assert "fr" in exc.value.message and "en" in (exc.value.hint or "")


def test_a_broken_pack_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngroups:\n  - {category: x, action: delete, terms: [a]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_packs([], extra=[bad])
    assert str(bad) in exc.value.message
