"""Data sets for the evaluation commands: built-in ones assembled from registry packages, or the user's own files.

Faces (:class:`FaceSet`):

* built-in ``scenes``: real people from registry photos (scikit-image astronaut, matplotlib grace_hopper, the
  ultralytics bus/zidane people; see :mod:`anon_ros.core.scene`) composited into CARLA-like RGB-D street frames at
  a grid of face widths, with ground truth (head masks, brows-to-chin face boxes, person boxes, identities);
* built-in ``stream``: consecutive frames of :class:`anon_ros.core.synthetic_stream.SyntheticStream` (people walking,
  so the anonymizer's tracker is exercised), with ground-truth head masks;
* the user's images (files or folders) or the image topic of a rosbag2 bag: no ground truth; the evaluation uses a
  strong detector's output on the original instead.

Speech (:func:`builtin_speech`, :func:`user_speech`): see :mod:`anon_ros.core.voice_eval`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from anon_ros.core.errors import AnonRosError, InputError
from anon_ros.core.sample_images import SampleImageMissingError, load_sample_image
from anon_ros.core.scene import PERSON_SOURCES, compose_scene

IMAGE_SUFFIXES = frozenset({'.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff'})
#: Face widths (px) the built-in scenes cycle through: from distant (the attacker's lower limit) to close.
SCENE_FACE_WIDTHS = (40, 56, 72, 96, 128, 160)


class DatasetError(AnonRosError):
    """A data set cannot be built or read (missing files, nothing usable in them)."""


@dataclass(frozen=True)
class FaceFrame:
    """One frame to anonymize, with what is known about the people in it.

    ``head_mask`` is ground truth (None when unknown: the user's own data). ``face_boxes`` (n, 4) are brows-to-chin
    boxes, ``identities`` the identity of each face (None when unknown). ``person_boxes`` (m, 4) are ground-truth
    person boxes or None. ``depth_m`` is float32 metres or None. ``sequence`` names the stream a frame belongs to
    (frames of one sequence are consecutive; the anonymizer is reset between sequences).
    """

    name: str
    rgb: np.ndarray
    depth_m: np.ndarray | None
    head_mask: np.ndarray | None
    face_boxes: np.ndarray
    identities: tuple[str | None, ...]
    person_boxes: np.ndarray | None
    sequence: str

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            msg = f'frame {self.name}: rgb must be HxWx3 uint8, got {self.rgb.dtype} {self.rgb.shape}'
            raise InputError(msg)
        hw = self.rgb.shape[:2]
        for label, arr in (('depth_m', self.depth_m), ('head_mask', self.head_mask)):
            if arr is not None and arr.shape != hw:
                msg = f'frame {self.name}: {label} must be {hw}, got {arr.shape}'
                raise InputError(msg)
        if self.face_boxes.ndim != 2 or self.face_boxes.shape[1] != 4:
            msg = f'frame {self.name}: face_boxes must be (n, 4), got {self.face_boxes.shape}'
            raise InputError(msg)
        if len(self.identities) != len(self.face_boxes):
            msg = f'frame {self.name}: {len(self.identities)} identities for {len(self.face_boxes)} faces'
            raise InputError(msg)


@dataclass(frozen=True)
class GalleryFace:
    """The attacker's reference photo of one identity: an original photo and the face box in it."""

    identity: str
    image: np.ndarray
    face_box: tuple[int, int, int, int]
    source: str


@dataclass
class FaceSet:
    """Frames plus, for identification, a gallery of one original face per identity."""

    name: str
    description: str
    frames: list[FaceFrame] = field(default_factory=list)
    gallery: list[GalleryFace] = field(default_factory=list)
    ground_truth: bool = True
    notes: list[str] = field(default_factory=list)


def available_identities() -> tuple[list[str], list[str]]:
    """(identities whose photo's package is installed, notes about the missing ones)."""
    names, notes = [], []
    for name, src in PERSON_SOURCES.items():
        try:
            load_sample_image(src.image)
            names.append(name)
        except SampleImageMissingError as err:
            notes.append(f'identity {name} left out: {err}')
    return names, notes


def gallery_for(identities: Sequence[str]) -> list[GalleryFace]:
    """One original face per identity: the registry photo at its native resolution and its annotated face box."""
    out = []
    for name in identities:
        src = PERSON_SOURCES[name]
        out.append(GalleryFace(name, load_sample_image(src.image), src.face_box, f'{src.image} (original photo)'))
    return out


def builtin_scenes(n_scenes: int, people: int, size: tuple[int, int], seed: int = 0) -> FaceSet:
    """``n_scenes`` still RGB-D street scenes with ``people`` people each, identities and face widths rotated so
    every identity appears at several scales (:data:`SCENE_FACE_WIDTHS`)."""
    if n_scenes < 1 or people < 1:
        msg = f'the scene set needs >= 1 scene and >= 1 person per scene, got {n_scenes} and {people}'
        raise DatasetError(msg)
    names, notes = available_identities()
    if len(names) < 2:
        msg = f'identification needs >= 2 identities with installed photos, got {names}: ' + '; '.join(notes)
        raise DatasetError(msg)
    fs = FaceSet(
        'scenes',
        f'{n_scenes} synthetic RGB-D street scenes of {size[1]}x{size[0]}, {people} real people each '
        f'({len(names)} identities: {", ".join(names)}), '
        f'face widths {min(SCENE_FACE_WIDTHS)}-{max(SCENE_FACE_WIDTHS)} px',
        gallery=gallery_for(names),
        notes=notes,
    )
    rng = np.random.default_rng(seed)
    for k in range(n_scenes):
        srcs = [names[(k * people + j) % len(names)] for j in range(people)]
        widths = [float(SCENE_FACE_WIDTHS[(k + 2 * j) % len(SCENE_FACE_WIDTHS)]) for j in range(people)]
        # Keep the requested widths feasible in small frames (a face must fit).
        widths = [min(w, 0.3 * min(size)) for w in widths]
        sc = compose_scene(people, size, rng, face_widths=widths, sources=srcs)
        fs.frames.append(FaceFrame(
            name=f'scene_{k:03d}', rgb=sc.rgb, depth_m=sc.depth_m, head_mask=sc.head_mask,
            face_boxes=sc.face_boxes.astype(np.float32), identities=tuple(sc.sources),
            person_boxes=sc.person_boxes.astype(np.float32), sequence=f'scene_{k:03d}',
        ))
    return fs


def face_box_from_head_box(head: np.ndarray) -> np.ndarray:
    """The brows-to-chin face box inside a head-ellipse box drawn by :mod:`anon_ros.core.scene` (head ellipse axes
    0.72 x face width and 0.95 x face height, centred 0.15 face heights above the face centre)."""
    head = np.asarray(head, np.float32).reshape(-1, 4)
    fw = (head[:, 2] - head[:, 0]) / 1.44
    fh = (head[:, 3] - head[:, 1]) / 1.9
    cx = (head[:, 0] + head[:, 2]) / 2
    cy = (head[:, 1] + head[:, 3]) / 2 + 0.15 * fh
    return np.stack([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], axis=1).astype(np.float32)


def builtin_stream(frames: int, people: int, size: tuple[int, int], seed: int = 0) -> FaceSet:
    """``frames`` consecutive frames of a synthetic walking-people stream (30 fps) with ground-truth head masks."""
    from anon_ros.core.synthetic_stream import SyntheticStream

    stream = SyntheticStream(size, people, seed, 30.0)
    fs = FaceSet('stream', f'{frames} consecutive frames (30 fps) of {stream.n_people} people walking through a '
                 f'synthetic {size[1]}x{size[0]} RGB-D street (tracker between detections)')
    for i in range(frames):
        f = stream.frame(i)
        fs.frames.append(FaceFrame(
            name=f'stream_{i:04d}', rgb=f.rgb, depth_m=f.depth_m, head_mask=f.head_mask,
            face_boxes=face_box_from_head_box(f.head_boxes), identities=(None,) * len(f.person_ids),
            person_boxes=None, sequence='stream',
        ))
    return fs


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        msg = f'cannot read image {path}'
        raise DatasetError(msg)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def collect_files(
    paths: Sequence[str | Path], in_folder: Callable[[Path], list[Path]], kind: str, none_found: str
) -> list[Path]:
    """Files named directly, plus ``in_folder(folder)`` for each named folder; DatasetError for a path that does
    not exist (``no such {kind} file or folder``) or when nothing is found (``{none_found} in <paths>``)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += in_folder(p)
        elif p.is_file():
            out.append(p)
        else:
            msg = f'no such {kind} file or folder: {p}'
            raise DatasetError(msg)
    if not out:
        msg = f'{none_found} in {", ".join(map(str, paths))}'
        raise DatasetError(msg)
    return out


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly or found (sorted, not recursively) in the named folders."""
    return collect_files(
        paths, lambda d: sorted(q for q in d.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES), 'image',
        f'no images ({", ".join(sorted(IMAGE_SUFFIXES))})',
    )


def user_images(paths: Sequence[str | Path], limit: int | None = None) -> FaceSet:
    """The user's photos or video frames saved as images; each is its own sequence (the tracker is reset)."""
    files = image_files(paths)[:limit]
    fs = FaceSet('images', f'{len(files)} user images from {", ".join(map(str, paths))}', ground_truth=False)
    for p in files:
        fs.frames.append(FaceFrame(p.name, _read_image(p), None, None, np.zeros((0, 4), np.float32), (), None, p.name))
    return fs


def bag_images(path: str | Path, topic: str | None = None, limit: int | None = 100, every: int = 1) -> FaceSet:
    """Frames of one ``sensor_msgs/Image`` or ``CompressedImage`` topic of a rosbag2 bag (MCAP or sqlite3), in
    order, as one sequence. ``topic`` None: the only image topic (an error names them when there are several)."""
    from rosbags.rosbag2 import Reader

    from anon_ros.bags import kilted_typestore
    from anon_ros.conversions import image_to_array

    kinds = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
    store = kilted_typestore()
    fs = FaceSet('bag', '', ground_truth=False)
    try:
        reader = Reader(Path(path))
        reader.open()
    except Exception as err:
        msg = f'cannot read bag {path}: {err}'
        raise DatasetError(msg) from err
    try:
        topics = sorted({c.topic for c in reader.connections if c.msgtype in kinds})
        if topic is None:
            if len(topics) != 1:
                msg = f'bag {path} has image topics {topics}: choose one with --topic'
                raise DatasetError(msg)
            topic = topics[0]
        conns = [c for c in reader.connections if c.topic == topic and c.msgtype in kinds]
        if not conns:
            msg = f'bag {path} has no image topic {topic!r}; image topics: {topics}'
            raise DatasetError(msg)
        for i, (conn, _ts, raw) in enumerate(reader.messages(connections=conns)):
            if i % max(1, every):
                continue
            msg_obj = store.deserialize_cdr(raw, conn.msgtype)
            if conn.msgtype.endswith('CompressedImage'):
                bgr = cv2.imdecode(np.frombuffer(bytes(msg_obj.data), np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    continue
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            else:
                arr = np.asarray(image_to_array(msg_obj), np.uint8)
                enc = msg_obj.encoding
                if enc in ('rgb8', '8UC3'):
                    rgb = np.ascontiguousarray(arr)
                elif enc == 'bgr8':
                    rgb = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
                elif enc in ('rgba8', 'bgra8'):
                    rgb = cv2.cvtColor(arr, cv2.COLOR_RGBA2RGB if enc == 'rgba8' else cv2.COLOR_BGRA2RGB)
                elif enc in ('mono8', '8UC1'):
                    rgb = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
                else:
                    msg = f'{topic}: image encoding {enc!r} is not a colour image'
                    raise DatasetError(msg)
            fs.frames.append(FaceFrame(f'{topic}#{i}', rgb, None, None, np.zeros((0, 4), np.float32), (), None, topic))
            if limit is not None and len(fs.frames) >= limit:
                break
    finally:
        reader.close()
    if not fs.frames:
        msg = f'bag {path}: no decodable frames on {topic}'
        raise DatasetError(msg)
    fs.description = f'{len(fs.frames)} frames of {topic} in bag {path}'
    return fs


# ------------------------------------------------------------------------------------------------------ speech


@dataclass
class SpeechSet:
    """Utterances (16 kHz) and notes on the sets that were missing."""

    description: str
    utterances: list  # list[anon_ros.core.voice_eval.Utterance]
    notes: list[str] = field(default_factory=list)

    def speakers(self) -> dict[str, dict[str, object]]:
        """speaker -> {source, utterances, seconds}."""
        out: dict[str, dict[str, object]] = {}
        for u in self.utterances:
            d = out.setdefault(u.speaker, {'source': u.source, 'utterances': 0, 'seconds': 0.0})
            d['utterances'] = int(d['utterances']) + 1  # type: ignore[call-overload]
            d['seconds'] = round(float(d['seconds']) + u.duration_s, 2)  # type: ignore[arg-type]
        return out


def builtin_speech(quick: bool = False, sentences: int | None = None) -> SpeechSet:
    """flite's 4 voices (Harvard sentences), the LibriVox reader and the 'cards' speaker (pocketsphinx-testdata),
    and pyannote's two sample speakers when its wheel is cached. ``quick``: flite (4 sentences) + LibriVox only."""
    from anon_ros.core.voice_eval import (
        HARVARD_SENTENCES,
        SpeechDataMissing,
        load_flite,
        load_speech,
    )

    n = sentences if sentences is not None else (4 if quick else len(HARVARD_SENTENCES))
    utts: list = []
    notes: list[str] = []
    utts += load_flite(sentences=HARVARD_SENTENCES[:n])
    for name in (('librivox',) if quick else ('librivox', 'cards', 'pyannote')):
        try:
            utts += load_speech([name])
        except SpeechDataMissing as err:
            notes.append(f'speech set {name} left out: {err}')
    desc = (f'flite voices x {n} Harvard sentences, ' + ('LibriVox' if quick else 'LibriVox, cards, pyannote sample')
            + ' (registry packages)')
    return SpeechSet(desc, utts, notes)


def user_speech(paths: Sequence[str | Path]) -> SpeechSet:
    """WAV files (or folders of them, searched recursively). The speaker is the file's folder name; a ``.txt`` file
    next to a WAV (same stem) holds its transcript for WER."""
    from anon_ros.core.voice_eval import EVAL_RATE, Utterance, _read_wav, resample

    files = collect_files(paths, lambda d: sorted(d.rglob('*.wav')), 'WAV', 'no .wav files')
    utts = []
    for f in files:
        audio, rate = _read_wav(f)
        txt = f.with_suffix('.txt')
        text = ' '.join(txt.read_text().lower().split()) if txt.is_file() else ''
        utts.append(Utterance(f.parent.name or 'speaker', f.stem, resample(audio, rate), EVAL_RATE, text, 'user'))
    return SpeechSet(f'{len(utts)} user WAV files from {", ".join(map(str, paths))}', utts)
