#!/usr/bin/env bash
# Runs tests/blender against other Blender releases through the PyPI `bpy` module.
# Not part of CI (each version is a few hundred MB of download and install).
#
#   scripts/test_blender_versions.sh 4.2.23 4.5.15 5.0.1 [-- extra pytest args]
#
# One venv per version under $DREAMWIRE_BPY_VENVS (default /tmp/dreamwire-bpy), kept and
# reused. Each venv also gets Dreamwire with its backend extra: the tests start a real
# backend process with the venv's own Python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${DREAMWIRE_BPY_VENVS:-/tmp/dreamwire-bpy}
PYTHON=${PYTHON:-python3}  # bpy 4.2 to 5.0 need Python 3.11

versions=()
while [[ $# -gt 0 && $1 != "--" ]]; do
    versions+=("$1")
    shift
done
[[ ${1:-} == "--" ]] && shift
if [[ ${#versions[@]} -eq 0 ]]; then
    echo "usage: $0 BPY_VERSION... [-- pytest args]   (pip index versions bpy lists them)" >&2
    exit 2
fi

CONSTRAINTS=()
[[ -f constraints-cpu.txt ]] && CONSTRAINTS=(-c constraints-cpu.txt)

declare -A status
for v in "${versions[@]}"; do
    venv="$BASE/$v"
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import dreamwire.backend" 2>/dev/null; then
        echo "== setting up $venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install -q "${CONSTRAINTS[@]}" "bpy==$v" pytest pytest-timeout hypothesis
        "$venv/bin/pip" install -q "${CONSTRAINTS[@]}" -e "$ROOT[backend]"
        "$venv/bin/pip" install -q --no-deps open_clip_torch
    fi
    # bpy 4.5 is built against NumPy 1.x and says so in its metadata (numpy<2), but the
    # backend install above pulls NumPy 2; with it, bpy prints "numpy.core.multiarray
    # failed to import" and the animation scenario ran into its timeout. Put back what bpy
    # asks for (Blender 4.2 to 4.5 bundle NumPy 1.26 themselves).
    numpy_req=$("$venv/bin/python" -c "
import importlib.metadata as m
print(next((r.split(';')[0] for r in m.requires('bpy') or [] if r.startswith('numpy') and '<' in r), ''))")
    if [[ -n $numpy_req ]]; then
        "$venv/bin/pip" install -q "$numpy_req"
    fi
    echo "== bpy $v: $("$venv/bin/python" -c 'import bpy; print(bpy.app.version_string)' 2>/dev/null | tail -1)"
    if "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/blender "$@"; then
        status[$v]=passed
    else
        status[$v]=FAILED
    fi
done

rc=0
for v in "${versions[@]}"; do
    echo "bpy $v: ${status[$v]}"
    [[ ${status[$v]} == passed ]] || rc=1
done
exit $rc
