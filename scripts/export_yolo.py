"""Export a YOLO .pt checkpoint to ONNX, cached by what it is built from.

Runs inside the export venv made by scripts/build_models.sh (ultralytics + torch), never at run time. The output
file is ``<out-dir>/<stem>-<key>.onnx`` where key hashes (checkpoint sha256, ultralytics version, imgsz, export
options), so a changed input gives a new file and an unchanged one is skipped. Prints the path on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Never reach for the network or pip from inside ultralytics.
os.environ.setdefault('YOLO_OFFLINE', '1')
os.environ.setdefault('YOLO_AUTOINSTALL', 'false')

EXPORT_OPTIONS = 'onnx;dynamic=1;simplify=1;opset=17'


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open('rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--weights', type=Path, required=True, help='YOLO detect or pose checkpoint (.pt)')
    parser.add_argument('--imgsz', type=int, default=640, help='export trace size (the model is dynamic)')
    parser.add_argument('--out-dir', type=Path, required=True)
    args = parser.parse_args(argv)

    weights: Path = args.weights
    if not weights.is_file():
        print(f'export_yolo: checkpoint {weights} does not exist', file=sys.stderr)
        return 2
    # Ultralytics logs to stdout; keep stdout for the resulting path only.
    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics

    key_src = f'{sha256_file(weights)};ultralytics={ultralytics.__version__};imgsz={args.imgsz};{EXPORT_OPTIONS}'
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    out = args.out_dir / f'{weights.stem}-{key}.onnx'
    if out.is_file():
        print(out)
        return 0

    args.out_dir.mkdir(parents=True, exist_ok=True)
    # Export from a private copy: ultralytics writes next to the checkpoint (maybe read-only site-packages).
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        from ultralytics import YOLO

        local = Path(tmp) / weights.name
        shutil.copyfile(weights, local)
        produced = YOLO(str(local)).export(format='onnx', imgsz=args.imgsz, dynamic=True, simplify=True, opset=17)
        part = out.with_suffix('.onnx.part')
        shutil.copyfile(produced, part)
        os.replace(part, out)
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
