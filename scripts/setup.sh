#!/usr/bin/env bash
# Sets up a Dreamwire development environment on a fresh Debian/Ubuntu machine:
# system packages for headless Blender and Krita (when run as root), a virtualenv in .venv
# and the project installed editable with the backend and test extras.
#
#   scripts/setup.sh           backend + tests (+ Blender/Krita system packages as root)
#   scripts/setup.sh --light   backend only, no system packages
set -euo pipefail
cd "$(dirname "$0")/.."

light=0
[ "${1:-}" = "--light" ] && light=1

APT_PACKAGES=(
  # Blender (the PyPI bpy module) headless, Workbench/EEVEE on Mesa
  libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libxext6
  libegl1 libegl-mesa0 libgl1-mesa-dri
  # Krita headless with its embedded Python (PyQt5 is only a Recommends of krita)
  krita xvfb xauth python3-numpy python3-zmq python3-pyqt5 python3-sip
)

if [ "$light" = 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# Without an NVIDIA GPU, pin the CPU build of torch: an unpinned torch pulls a multi-GB
# CUDA build.
constraints=()
command -v nvidia-smi >/dev/null 2>&1 || constraints=(-c constraints-cpu.txt)

# The backend extra brings onnxruntime (DWPose); the test extra onnx, which writes the tiny
# DWPose files the tests run.
extras="backend"
[ "$light" = 0 ] && extras="backend,test,blender-test"
"${pip[@]}" "${constraints[@]}" -e ".[${extras}]"
# open_clip_torch carries the CLIP BPE vocabulary that real checkpoints lack. It is used
# as a data file only; its own dependencies (torchvision) are not needed.
"${pip[@]}" --no-deps open_clip_torch
# spandrel runs the upscaler models. Its declared torchvision is left out: only two
# architectures Dreamwire does not run use it, and PyPI's Linux torchvision is a CUDA build
# that fails to load against the CPU torch pinned above (pyproject.toml, extra `upscalers`).
"${pip[@]}" "${constraints[@]}" --no-deps "spandrel>=0.4.2,<0.5"
# mediapipe runs the mediapipe_face preprocessor (its tests build a tiny face_landmarker.task).
# Installed without its declared dependencies: its opencv-contrib-python would write its own
# cv2 over opencv-python-headless's (both own cv2/; mediapipe 1.2.3 brings OpenCV 5.1 and
# numpy 2 with it), sounddevice serves its audio tasks only and the vision tasks never import
# absl-py; matplotlib they import at `import mediapipe` (its drawing_utils). Where no wheel
# installs, the tests that need it skip.
if [ "$light" = 0 ]; then
  if "${pip[@]}" --no-deps "mediapipe>=1.2,<2"; then
    "${pip[@]}" "matplotlib>=3.7"
  else
    echo "setup: mediapipe did not install here; the mediapipe_face tests will skip"
  fi
fi
echo "setup: environment ready in .venv"
