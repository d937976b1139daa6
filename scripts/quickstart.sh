#!/usr/bin/env bash
# The README's first Quickstart command: set up, then run the main job end to end on the
# built-in tiny default model and say where the results are.
#
# 1. txt2img then img2img through the `dreamwire generate` command (in-process engine);
# 2. the Blender main job, headless: a small scene is captured (depth, normals), generated
#    through a real backend process over ZeroMQ, projected onto the meshes' UVs from cameras
#    placed by coverage (unseen texels filled, PBR maps baked) and saved as a .blend plus PNGs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-out/quickstart}
mkdir -p "$out"
dw=.venv/bin/dreamwire

echo "== txt2img on the built-in tiny model"
$dw generate --prompt "a (mossy:1.2) stone wall, seamless texture" --negative "blurry" \
  --sampler "DPM++ 2M Karras" --steps 8 --seed 42 --width 256 --height 256 --batch 2 \
  --seamless both --out "$out/generate" --json >"$out/txt2img.json"
first=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"][0]["path"])' "$out/txt2img.json")
echo "   $first"

echo "== img2img from it"
$dw generate --prompt "a stone wall at dusk" --init-image "$first" --strength 0.6 \
  --sampler "Euler a" --steps 8 --seed 7 --width 256 --height 256 --out "$out/generate" --json \
  >"$out/img2img.json"
.venv/bin/python -c 'import json,sys; print("  ", json.load(open(sys.argv[1]))["images"][0]["path"])' "$out/img2img.json"

echo "== Blender: capture, generate through a backend process, project from cameras placed by coverage"
.venv/bin/python scripts/demo_blender.py --out "$out/blender"

echo
echo "Quickstart done."
echo "  generate: PNGs with A1111 'parameters' infotext under $out/generate/jobs/"
echo "  Blender:  $out/blender/dreamwire-demo.blend, captures/ and textures/ (summary.json)"
