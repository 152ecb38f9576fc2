"""The sample photos become compliant white-background main images; the originals fail for stated reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from skuforge.images import inspect_image, parse_ops, run_pipeline
from skuforge.images.source import load_image

ORIGINAL_FAILURES = {
    "B074M5HPBD.jpg": ["background is not pure white: 90% of border pixels are RGB 255, need >= 97%"],
    "B0799CK52K.jpg": ["background is not pure white: 95% of border pixels are RGB 255, need >= 97%"],
    "B07GTFSCHB.jpg": [],  # the vitamin jar is already a compliant main image
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_FAILURES))
def test_original_photo_is_judged_with_human_reasons(examples: Path, name: str) -> None:
    report = inspect_image(Image.open(examples / name), "amazon-main")
    assert report["failures"] == ORIGINAL_FAILURES[name]
    assert report["passed"] is (not ORIGINAL_FAILURES[name])


@pytest.mark.parametrize("name", sorted(ORIGINAL_FAILURES))
def test_sample_becomes_a_compliant_amazon_main_image(examples: Path, name: str) -> None:
    ops = parse_ops("cutout,background:white,compose,inspect:amazon-main")
    result = run_pipeline(load_image(name, examples), ops)
    report = result.report
    assert report is not None and report["passed"], report
    m = report["metrics"]
    assert m["white_border"] == 1.0 and m["fill"] >= 0.85 and m["width"] == m["height"] >= 1000
    assert result.format == "jpeg" and result.encoded[:3] == b"\xff\xd8\xff"


def test_inspect_says_when_the_nsfw_score_was_not_available_or_gives_it(examples: Path) -> None:
    report = inspect_image(Image.open(examples / "B07GTFSCHB.jpg"), "amazon-main")
    nsfw = report["metrics"]["nsfw"]
    if nsfw == "unavailable":
        assert report["not_checked"] == ["nsfw: unavailable"]
    else:
        assert 0.0 <= nsfw <= 0.3 and report["not_checked"] == []


def test_small_blurry_off_white_image_fails_every_stated_rule() -> None:
    image = Image.new("RGB", (400, 300), (240, 240, 240))
    image.paste((30, 30, 30), (180, 130, 220, 170))
    report = inspect_image(image.resize((400, 300)), "amazon-main")
    assert "too small: long side is 400 px (400x300), need >= 1000 px" in report["failures"]
    assert "background is not pure white: 0% of border pixels are RGB 255, need >= 97%" in report["failures"]
    assert not report["passed"]


def test_unknown_rule_set_lists_the_shipped_ones() -> None:
    from skuforge.images import OpSpecError

    with pytest.raises(OpSpecError) as caught:
        inspect_image(Image.new("RGB", (10, 10)), "amazon")
    assert "amazon-main" in caught.value.hint and "white-background" in caught.value.hint
