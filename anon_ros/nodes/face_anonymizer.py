"""``face_anonymizer``: RGB(-D) images in, images with every head anonymized out.

Subscribes ``image`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8) and, unless ``use_depth`` is false,
``depth`` (32FC1 metres or 16UC1 millimetres), paired by header stamp. Publishes ``image_anonymized`` with the
input's header and encoding, ``mask`` (mono8, 255 = anonymized) when ``publish_mask`` is set, and ``detections``
(anon_ros_msgs/HeadDetectionArray: the head boxes masked, detected or tracked, with the image's header) when
``publish_detections`` is set.

Fails closed: a frame that cannot be parsed or processed is published fully obscured (``on_error: obscure``) or not
at all (``on_error: drop``), never raw. When processing falls behind, the oldest waiting frame is dropped, so the
output always follows the latest input and nothing raw is ever published in its place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from anon_ros.conversions import fill_image, image_to_array
from anon_ros.core.depth_mask import DepthEncoding, DepthMaskConfig
from anon_ros.core.ensemble import EnsembleConfig, obscure_frame
from anon_ros.core.errors import InputError
from anon_ros.core.face_pipeline import FaceAnonymizer, FaceAnonymizerConfig, FailMode
from anon_ros.core.heads import HeadBoxes
from anon_ros.core.sync import header_stamp_ns
from anon_ros.nodes.common import IMAGE_OUT_QOS, SENSOR_QOS, declare, run
from anon_ros.nodes.provenance import AnonymizedOutputs
from anon_ros.ros_sync import make_subscriber, make_synchronizer
from anon_ros_msgs.msg import HeadDetection, HeadDetectionArray

# Frames larger than this are not trusted enough to allocate an obscured replacement for.
MAX_SIDE = 16384
DEPTH_ENCODINGS = {'32FC1': DepthEncoding.FLOAT32_M, '16UC1': DepthEncoding.UINT16_MM, 'mono16': DepthEncoding.UINT16_MM}


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """The RGB view the pipeline works on, for each supported colour encoding."""
    if encoding in ('rgb8', '8UC3'):
        return image
    if encoding == 'bgr8':
        return image[:, :, ::-1]
    if encoding == 'rgba8':
        return image[:, :, :3]
    if encoding == 'bgra8':
        return image[:, :, 2::-1]
    if encoding in ('mono8', '8UC1'):
        return np.repeat(image[:, :, None], 3, axis=2)
    msg = f'image encoding {encoding!r} is not a colour image; expected rgb8, bgr8, rgba8, bgra8 or mono8'
    raise InputError(msg)


def from_rgb(rgb: np.ndarray, original: np.ndarray, encoding: str) -> np.ndarray:
    """Back to the input's encoding (alpha is kept from the input)."""
    if encoding in ('rgb8', '8UC3'):
        return rgb
    if encoding == 'bgr8':
        return rgb[:, :, ::-1]
    if encoding in ('rgba8', 'bgra8'):
        out = original.copy()
        out[:, :, :3] = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
        return out
    if encoding in ('mono8', '8UC1'):
        return rgb.mean(axis=2).astype(np.uint8)
    msg = f'image encoding {encoding!r} is not supported'
    raise InputError(msg)


@dataclass
class Stats:
    frames: int = 0
    failed: int = 0
    dropped_overload: int = 0
    without_depth: int = 0
    busy_s: float = 0.0


class FaceAnonymizerNode(Node):
    """Thin wrapper around :class:`anon_ros.core.face_pipeline.FaceAnonymizer`."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('face_anonymizer', **kwargs)
        p = self._declare_parameters()
        self.on_error = p['on_error']
        self.use_depth: bool = p['use_depth']
        self.depth_timeout_s: float = p['depth_timeout']
        config = FaceAnonymizerConfig(
            pose_model=p['pose_model'] or None,
            face_model=p['face_model'] or None,
            use_face_detector=p['use_face_detector'],
            detector_size=p['detector_size'],
            person_conf=p['person_conf'],
            face_conf=p['face_conf'],
            detect_every=p['detect_every'],
            threads=p['threads'],
            async_detection=p['async_detection'],
            async_max_lag=p['async_max_lag'],
            depth=DepthMaskConfig(back_m=p['depth_band_m']),
            ensemble=EnsembleConfig(noise_sd=p['noise_sd'], warp=p['warp'], smooth=p['smooth'], cells=p['cells']),
            on_error=FailMode.RAISE,  # the node decides what a failed frame becomes (on_error)
        )
        # Loads the models once (ModelError -> the node does not start, with the file and how to build it).
        self.anonymizer = FaceAnonymizer(config)

        overrides = QoSOverridingOptions.with_default_policies()
        self.image_pub = self.create_publisher(Image, 'image_anonymized', IMAGE_OUT_QOS, qos_overriding_options=overrides)
        self.mask_pub = (
            self.create_publisher(Image, 'mask', IMAGE_OUT_QOS, qos_overriding_options=overrides)
            if p['publish_mask'] else None
        )
        outputs = AnonymizedOutputs(self)
        outputs.add(self.image_pub)
        if self.mask_pub is not None:
            outputs.add(self.mask_pub)
        self.detections_pub = (
            self.create_publisher(HeadDetectionArray, 'detections', IMAGE_OUT_QOS, qos_overriding_options=overrides)
            if p['publish_detections'] else None
        )
        if self.detections_pub is not None:
            outputs.add(self.detections_pub)  # boxes carry no pixels: safe to record

        self.stats = Stats()
        self._slot: tuple[Image, Image | None] | None = None
        self._dropped_since_last = 0  # frames replaced in the slot since the worker last took one
        self._slot_lock = threading.Condition()
        self._pending: dict[int, tuple[Image, float]] = {}  # images waiting for their depth, by stamp
        self._running = True
        if self.use_depth:
            image_sub = make_subscriber(self, Image, 'image', SENSOR_QOS)
            depth_sub = make_subscriber(self, Image, 'depth', SENSOR_QOS)
            image_sub.registerCallback(self._on_image_waiting_for_depth)
            make_synchronizer([image_sub, depth_sub], p['queue_size'], p['depth_slop'], self._on_pair)
            self.create_timer(0.05, self._release_images_without_depth)
        else:
            self.create_subscription(
                Image, 'image', lambda msg: self._submit(msg, None), SENSOR_QOS, qos_overriding_options=overrides
            )
        self.create_timer(p['stats_period'], self._log_stats)
        self._worker = threading.Thread(target=self._work, name='face_anonymizer', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'ready: depth {"on" if self.use_depth else "off"}, detector {config.detector_size}px every '
            f'{config.detect_every} frame(s), on_error={self.on_error}'
        )

    def _declare_parameters(self) -> dict[str, object]:
        # Defaults come from the core's config, so the node and the offline tools cannot drift apart.
        core = FaceAnonymizerConfig()
        d = {}
        d['use_depth'] = declare(self, 'use_depth', True, 'pair images with the depth topic for depth-range masks')
        d['depth_slop'] = declare(self, 'depth_slop', 0.02, 'max stamp difference of an image/depth pair, s',
                                  min_value=0.0, max_value=1.0)
        d['depth_timeout'] = declare(self, 'depth_timeout', 0.25, 'an image without depth after this long (s) is '
                                     'anonymized with whole head boxes', min_value=0.0, max_value=10.0)
        d['queue_size'] = declare(self, 'queue_size', 5, 'synchronizer queue per input', min_value=1, max_value=100)
        d['pose_model'] = declare(self, 'pose_model', '', 'YOLO detect/pose model (.onnx); empty = built default')
        d['face_model'] = declare(self, 'face_model', '', 'CenterFace model (.onnx); empty = built default')
        d['use_face_detector'] = declare(self, 'use_face_detector', core.use_face_detector, 'back YOLO up with a face detector')
        d['detector_size'] = declare(self, 'detector_size', core.detector_size, 'YOLO input size, px (multiple of 32)',
                                     min_value=160, max_value=1280)
        d['person_conf'] = declare(self, 'person_conf', core.person_conf, 'person confidence threshold', min_value=0.01,
                                   max_value=0.99)
        d['face_conf'] = declare(self, 'face_conf', core.face_conf, 'face confidence threshold', min_value=0.01, max_value=0.99)
        d['detect_every'] = declare(self, 'detect_every', core.detect_every,
                                    'run the detectors every N frames; heads are tracked '
                                    'in between', min_value=1, max_value=10)
        d['threads'] = declare(self, 'threads', core.threads, 'onnxruntime threads', min_value=1, max_value=64)
        d['async_detection'] = declare(self, 'async_detection', core.async_detection,
                                       'run the detectors in a worker thread; every frame is anonymized with the '
                                       'tracked heads at once (use threads: 1 on 2 cores)')
        d['async_max_lag'] = declare(self, 'async_max_lag', core.async_max_lag,
                                     'frames a running detection may lag before a frame waits for it',
                                     min_value=1, max_value=30)
        d['depth_band_m'] = declare(self, 'depth_band_m', core.depth.back_m, 'depth behind the head still masked, m',
                                    min_value=0.05, max_value=5.0)
        d['noise_sd'] = declare(self, 'noise_sd', core.ensemble.noise_sd, 'ensemble: Gaussian noise, grey levels', min_value=0.0,
                                max_value=255.0)
        d['warp'] = declare(self, 'warp', core.ensemble.warp, 'ensemble: random perspective warp, fraction of the head',
                            min_value=0.0, max_value=0.3)
        d['smooth'] = declare(self, 'smooth', core.ensemble.smooth, 'ensemble: smoothing sigma, fraction of the head',
                              min_value=0.0, max_value=1.0)
        d['cells'] = declare(self, 'cells', core.ensemble.cells,
                             'ensemble: cells across a head after resampling (lower = stronger)',
                             min_value=2, max_value=16)
        d['on_error'] = declare(self, 'on_error', 'obscure', 'a frame that fails: publish it obscured, or drop it',
                                choices=('obscure', 'drop'))
        d['publish_mask'] = declare(self, 'publish_mask', False, 'also publish the anonymization mask (mono8)')
        d['publish_detections'] = declare(self, 'publish_detections', False,
                                          'also publish the masked head boxes (anon_ros_msgs/HeadDetectionArray)')
        d['stats_period'] = declare(self, 'stats_period', 10.0, 'seconds between statistics log lines',
                                    min_value=0.5, max_value=3600.0)
        return d

    # --- input ---------------------------------------------------------------------------------------------------
    def _on_image_waiting_for_depth(self, msg: Image) -> None:
        try:
            self._pending[header_stamp_ns(msg)] = (msg, time.monotonic())
        except Exception as err:  # noqa: BLE001 - a headerless or malformed image: fail closed right away
            self.get_logger().error(f'image without a usable stamp: {err}', throttle_duration_sec=5.0)
            self._submit(msg, None)

    def _on_pair(self, image: Image, depth: Image) -> None:
        self._pending.pop(header_stamp_ns(image), None)
        self._submit(image, depth)

    def _release_images_without_depth(self) -> None:
        now = time.monotonic()
        for stamp, (msg, arrived) in list(self._pending.items()):
            if now - arrived > self.depth_timeout_s and self._pending.pop(stamp, None) is not None:
                self.stats.without_depth += 1
                self.get_logger().warn(
                    f'no depth within {self.depth_timeout_s} s of image stamp {stamp}: anonymizing whole head boxes '
                    '(check the depth topic and depth_slop)', throttle_duration_sec=5.0,
                )
                self._submit(msg, None)

    def _submit(self, image: Image, depth: Image | None) -> None:
        with self._slot_lock:
            if self._slot is not None:
                self.stats.dropped_overload += 1
                self._dropped_since_last += 1
            self._slot = (image, depth)
            self._slot_lock.notify()

    # --- processing ----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            with self._slot_lock:
                while self._slot is None and self._running:
                    self._slot_lock.wait(timeout=0.2)
                if not self._running:
                    return
                image, depth = self._slot  # type: ignore[misc]
                self._slot = None
                frames_elapsed = 1 + self._dropped_since_last
                self._dropped_since_last = 0
            start = time.perf_counter()
            self._process(image, depth, frames_elapsed)
            self.stats.busy_s += time.perf_counter() - start

    def _process(self, image_msg: Image, depth_msg: Image | None, frames_elapsed: int = 1) -> None:
        self.stats.frames += 1
        try:
            pixels = image_to_array(image_msg)
            rgb = np.ascontiguousarray(to_rgb(pixels, image_msg.encoding))
            depth, encoding = self._depth(depth_msg)
            result = self.anonymizer.process(rgb, depth, encoding, frames_elapsed)
            out = from_rgb(result.image, pixels, image_msg.encoding)
            self._publish(image_msg, out, image_msg.encoding, result.mask)
            if self.detections_pub is not None:
                self.detections_pub.publish(detections_message(image_msg, result.heads, result.detected))
        except Exception as err:  # noqa: BLE001 - any failure: obscure or drop, never raw
            if not self.context.ok():
                return  # shut down under us (Ctrl-C, SIGTERM): nothing can be published any more
            self.stats.failed += 1
            self.get_logger().error(f'frame {image_msg.header.stamp.sec}.{image_msg.header.stamp.nanosec:09d} '
                                    f'failed ({type(err).__name__}: {err}); {self.on_error}', throttle_duration_sec=2.0)
            self.anonymizer.reset()
            if self.on_error == 'obscure':
                self._publish_obscured(image_msg)

    def _depth(self, depth_msg: Image | None) -> tuple[np.ndarray | None, DepthEncoding]:
        if depth_msg is None:
            return None, DepthEncoding.FLOAT32_M
        if depth_msg.encoding not in DEPTH_ENCODINGS:
            msg = f'depth encoding {depth_msg.encoding!r}; expected 32FC1 (metres) or 16UC1 (millimetres)'
            raise InputError(msg)
        return image_to_array(depth_msg), DEPTH_ENCODINGS[depth_msg.encoding]

    def _publish(self, src: Image, pixels: np.ndarray, encoding: str, mask: np.ndarray | None) -> None:
        out = Image(header=src.header)
        fill_image(out, np.ascontiguousarray(pixels), encoding)
        self.image_pub.publish(out)
        if self.mask_pub is not None and mask is not None:
            mask_msg = Image(header=src.header)
            fill_image(mask_msg, mask.astype(np.uint8) * 255, 'mono8')
            self.mask_pub.publish(mask_msg)

    def _publish_obscured(self, src: Image) -> None:
        """A replacement that shows nothing of the input; for unparseable input, a flat grey frame of its size."""
        if not (0 < src.height <= MAX_SIDE and 0 < src.width <= MAX_SIDE):
            self.get_logger().error(f'dropping a frame of size {src.width}x{src.height}', throttle_duration_sec=5.0)
            return
        try:
            rgb = np.ascontiguousarray(to_rgb(image_to_array(src), src.encoding))
            replacement = obscure_frame(rgb)
        except Exception:  # noqa: BLE001 - the input itself is unusable: nothing of it may pass
            replacement = np.full((src.height, src.width, 3), 128, np.uint8)
        self._publish(src, replacement, 'rgb8', np.ones(replacement.shape[:2], bool))

    def _log_stats(self) -> None:
        s = self.stats
        fps = s.frames / s.busy_s if s.busy_s else 0.0
        self.get_logger().info(
            f'{s.frames} frames ({fps:.1f} fps of processing), {s.failed} failed, {s.dropped_overload} dropped '
            f'(overload), {s.without_depth} without depth'
        )

    def destroy_node(self) -> None:
        self._running = False
        with self._slot_lock:
            self._slot_lock.notify_all()
        if hasattr(self, '_worker'):
            self._worker.join(timeout=5.0)
        if hasattr(self, 'anonymizer'):
            self.anonymizer.close()
        super().destroy_node()


def detections_message(image: Image, heads: HeadBoxes, detected: bool) -> HeadDetectionArray:
    """The head boxes masked in ``image``, stamped with its header."""
    msg = HeadDetectionArray(header=image.header, detected=bool(detected))
    msg.heads = [
        HeadDetection(x_min=float(b[0]), y_min=float(b[1]), x_max=float(b[2]), y_max=float(b[3]), score=float(sc),
                      source=int(src))
        for b, sc, src in zip(heads.boxes, heads.scores, heads.sources, strict=True)
    ]
    return msg


def main(args: Sequence[str] | None = None) -> int:
    return run(FaceAnonymizerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
