"""Look-ahead anonymization of recorded streams: every frame sees the detections before and after it, frames come
back in order with their tags, and whatever fails comes out failed in its place, never raw."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from anon_ros.core.face_pipeline import FaceAnonymizer, FaceAnonymizerConfig
from anon_ros.core.lookahead import LookaheadFaceAnonymizer
from anon_ros.core.synthetic_stream import SyntheticStream
from tests.core.test_faces_async import HEAD, SquareFinder, no_faces, stub_frame

SIZE = (360, 1280)


def run_all(an: LookaheadFaceAnonymizer, frames: list) -> list:
    out = []
    for i, f in enumerate(frames):
        out += an.push(i, f)
    out += an.flush()
    return out


def entering(frames: int = 30, appear: int = 4) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A head standing still at x=200 throughout, and a second one that appears at x=700 on frame ``appear`` (a
    person stepping out from behind something): frames and true head masks."""
    rgb, truth = [], []
    for i in range(frames):
        xs = [200.0, 700.0] if i >= appear else [200.0]
        img, t = stub_frame(xs, size=SIZE)
        rgb.append(img)
        truth.append(t)
    return rgb, truth


def raw_frames(results: list, truth: list[np.ndarray]) -> dict[int, int]:
    return {i: int(np.count_nonzero(t & ~r.mask)) for (i, r), t in zip(results, truth, strict=True)
            if np.count_nonzero(t & ~r.mask)}


def test_a_head_that_appears_between_keyframes_is_hidden_from_its_first_frame() -> None:
    rgb, truth = entering(appear=4)  # keyframes 0, 3, 6: frame 4 and 5 see the head only through keyframe 6
    cfg = FaceAnonymizerConfig(detect_every=3, use_face_detector=False)
    with LookaheadFaceAnonymizer(cfg, SquareFinder(0.0), no_faces) as an:
        results = run_all(an, rgb)
    assert [i for i, _ in results] == list(range(len(rgb)))
    assert not any(r.failed for _, r in results)
    assert raw_frames(results, truth) == {}
    # The live pipeline with the same detections shows it raw until its next detection: what look-ahead is for.
    live = FaceAnonymizer(cfg, SquareFinder(0.0), no_faces)
    live_results = [(i, live.process(f)) for i, f in enumerate(rgb)]
    assert set(raw_frames(live_results, truth)) == {4, 5}


def test_detection_runs_in_a_worker_beside_the_caller_and_frames_come_out_in_order() -> None:
    rgb, _ = entering(frames=20)
    finder = SquareFinder(0.02)
    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=2, use_face_detector=False), finder,
                                 no_faces, max_pending_keyframes=2) as an:
        held = []
        results = []
        for i, f in enumerate(rgb):
            results += an.push(f'frame{i}', f)
            held.append(an.pending)
        results += an.flush()
    assert [t for t, _ in results] == [f'frame{i}' for i in range(20)]
    assert threading.current_thread().name not in finder.threads
    assert finder.calls == 11  # keyframes 0, 2, ..., 18, and the last frame (19) on flush
    assert max(held) <= 2 * (2 + 1)  # never more than detect_every x (max_pending_keyframes + 1) frames held
    assert an.pending == 0


def test_the_last_frames_get_a_detection_of_their_own() -> None:
    rgb, truth = entering(frames=9, appear=7)  # keyframes 0, 3, 6; frames 7, 8 only seen by the flush detection
    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=3, use_face_detector=False), SquareFinder(0.0),
                                 no_faces) as an:
        results = run_all(an, rgb)
    assert raw_frames(results, truth) == {}


def test_unreadable_and_malformed_frames_fail_in_their_place() -> None:
    rgb, truth = entering(frames=10)
    frames: list = list(rgb)
    frames[2] = None  # could not be decoded
    frames[3] = rgb[3][:, :, :2]  # two channels
    frames[5] = np.zeros((0, 0, 3), np.uint8)  # empty
    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=3, use_face_detector=False), SquareFinder(0.0),
                                 no_faces) as an:
        results = run_all(an, frames)
    assert [i for i, _ in results] == list(range(10))
    failed = {i for i, r in results if r.failed}
    assert failed == {2, 3, 5}
    for i, r in results:
        if i in failed:
            assert r.error and r.mask.all()
        else:
            assert not np.count_nonzero(truth[i] & ~r.mask), i


def test_a_failed_detection_fails_its_frames_closed_and_the_stream_goes_on() -> None:
    rgb, truth = entering(frames=12)
    finder = SquareFinder(0.0)
    calls = {'n': 0}

    def flaky(img: np.ndarray):
        calls['n'] += 1
        if calls['n'] == 2:  # keyframe 3
            raise RuntimeError('detector exploded')
        return finder(img)

    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=3, use_face_detector=False), flaky,
                                 no_faces) as an:
        results = run_all(an, rgb)
    failed = {i for i, r in results if r.failed}
    assert failed == {1, 2, 3}  # the window that needed keyframe 3
    assert all('detector exploded' in (r.error or '') for i, r in results if i in failed)
    for i, r in results:
        if i not in failed:
            assert not np.count_nonzero(truth[i] & ~r.mask), i
            assert r.image.shape == rgb[i].shape


def test_a_change_of_resolution_starts_a_new_segment() -> None:
    small, _ = entering(frames=5)
    big = [np.ascontiguousarray(np.pad(f, ((0, 40), (0, 0), (0, 0)))) for f in small]
    finder = SquareFinder(0.0)
    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=3, use_face_detector=False), finder,
                                 no_faces) as an:
        results = run_all(an, small + big)
    assert [i for i, _ in results] == list(range(10))
    assert not any(r.failed for _, r in results)
    for (_, r), f in zip(results, small + big, strict=True):
        assert r.image.shape == f.shape and r.mask.shape == f.shape[:2]
        assert r.mask[120:120 + HEAD, 200:200 + HEAD].all()


@pytest.mark.slow
def test_walking_stream_with_real_models_shows_no_raw_head_pixel() -> None:
    """The embedded walking-people stream, every head (also heads cut by the border), real YOLO + CenterFace."""
    stream = SyntheticStream((480, 640), 5, 0, 15.0)
    frames = [stream.frame(i) for i in range(45)]
    with LookaheadFaceAnonymizer(FaceAnonymizerConfig(detect_every=3, threads=1)) as an:
        results = []
        for i, f in enumerate(frames):
            results += an.push(i, f.rgb, f.depth_m)
        results += an.flush()
    raw = {i: int(np.count_nonzero(f.head_mask & ~r.mask)) for (i, r), f in zip(results, frames, strict=True)
           if np.count_nonzero(f.head_mask & ~r.mask)}
    assert not any(r.failed for _, r in results)
    assert raw == {}, f'frames with raw head pixels (frame: pixels): {raw}'
