#!/usr/bin/env bash
# Install a2bis-mm and its OpenMMLab stack into .venv/ at the repository root.
#
# Idempotent: a second run checks the environment and finishes in seconds.
# mmcv 2.1.0 (with compiled ops) comes from a prebuilt wheel when one is found in
# $A2BIS_WHEELS, $PIP_FIND_LINKS or ../shared/wheels; otherwise it is built from the
# PyPI sdist (C++20 patch, MMCV_WITH_OPS=1, no build isolation): ~15 min on 2 cores.
# See docs/install.md for the traps of this stack and how this script deals with them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.a2bis-installed"
PYTHON="${PYTHON:-python3}"

TORCH_PKGS=(torch==2.14.1 torchvision==0.29.1)
# setuptools<81: mmcv's setup.py and mmengine still import pkg_resources.
BASE_PKGS=("setuptools>=77,<81" wheel ninja "numpy>=1.26,<2.5")
# mmpretrain: mmdet's ConvNeXt backbone (configs/a2bis/a2bis_convnext-t_*); 1.2.0 accepts mmcv 2.1.
MM_PKGS=(mmengine==0.10.7 mmdet==3.3.0 mmrotate-dev==1.0.1 mmpretrain==1.2.0 "pycocotools>=2.0.8")

log() { printf '[install] %s\n' "$*"; }

# The hash of everything that decides what gets installed: a change re-runs the install.
want_stamp() {
    cat "$ROOT/tools/install.sh" "$ROOT/setup.py" "$ROOT/requirements"/*.txt | sha256sum | cut -d' ' -f1
}

env_ok() {
    [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] &&
        "$PY" - <<'EOF' >/dev/null 2>&1
import mmcv, mmcv.ops, mmcv._ext, mmdet, mmengine, mmpretrain, mmrotate, a2bis_mm  # noqa: F401
assert mmcv.__version__ == '2.1.0'
EOF
    # the editable install must be this checkout's (a venv shared by two clones points at one of them)
    (cd / && "$PY" -c 'import os, sys, a2bis_mm
sys.exit(not os.path.realpath(a2bis_mm.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep))' "$ROOT")
}

if env_ok; then
    log "environment in $VENV is up to date"
    exit 0
fi

if [ ! -x "$PY" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

log "installing torch / torchvision"
"${PIP[@]}" install -q "${TORCH_PKGS[@]}" "${BASE_PKGS[@]}"

# mmcv 2.1.0 with ops: prebuilt wheel if available, else build from the sdist.
if ! "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
    WHEEL_DIRS=()
    for d in ${A2BIS_WHEELS:-} ${PIP_FIND_LINKS:-} "$ROOT/../shared/wheels"; do
        [ -d "$d" ] && WHEEL_DIRS+=("$d")
    done
    installed=0
    for d in "${WHEEL_DIRS[@]}"; do
        if ls "$d"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
            log "installing mmcv 2.1.0 from the prebuilt wheel in $d"
            if "${PIP[@]}" install -q --no-deps --no-index --find-links "$d" mmcv==2.1.0; then
                installed=1
                break
            fi
        fi
    done
    if [ "$installed" = 0 ]; then
        log "no prebuilt mmcv 2.1.0 wheel found: building it from source."
        log "THIS TAKES ABOUT 15 MINUTES ON 2 CORES (77 C++ files)."
        build="$(mktemp -d)"
        # mmcv's setup.py imports torch even to read its metadata: no build isolation here either.
        "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0 -d "$build"
        tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
        # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes C++17.
        sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
        # Without --no-build-isolation torch is invisible to setup.py and the ops are silently skipped.
        MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "${PIP[@]}" wheel --no-deps --no-build-isolation \
            -w "$build/dist" "$build/mmcv-2.1.0"
        "${PIP[@]}" install -q --no-deps "$build"/dist/mmcv-2.1.0-*.whl
        rm -rf "$build"
    fi
fi

log "installing mmengine / mmdet / mmrotate / mmpretrain and a2bis-mm"
"${PIP[@]}" install -q "${MM_PKGS[@]}" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$PY" - <<'EOF'
import mmcv, mmcv._ext, mmdet, mmengine, mmpretrain, mmrotate, torch  # noqa: F401
import mmpretrain.models  # noqa: F401  (the ConvNeXt config's custom import)
import a2bis_mm  # noqa: F401
print(f'[install] torch {torch.__version__}, mmcv {mmcv.__version__} (ops), mmengine '
      f'{mmengine.__version__}, mmdet {mmdet.__version__}, mmrotate {mmrotate.__version__}, '
      f'mmpretrain {mmpretrain.__version__}')
EOF
want_stamp >"$STAMP"
log "done: activate with 'source .venv/bin/activate'"
