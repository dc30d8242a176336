"""Video in and out: frames from a camera, a file or a network stream, and test videos from dataset images."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..data.records import ImageRecord

__all__ = ["SourceError", "VideoSource", "fit_frame", "fit_transform", "make_video", "open_writer"]

# FFmpeg prints its own connection and demuxer errors to stderr; failures are reported here as one message.
# Read when OpenCV's FFmpeg backend loads, so set before any capture; an explicit setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


class SourceError(ValueError):
    """A video source cannot be opened, or a live source stopped delivering frames."""


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's (and FFmpeg's) own warnings: a failed open or read becomes one message of ours."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class VideoSource:
    """Frames (BGR uint8) from a camera index (``"0"``), a video file, or a stream URL (``rtsp://``, ``http://``).

    Opening fails with :class:`SourceError` when the source gives no first frame. A file (or a URL with a known
    frame count) ends at its last frame; a live source (camera, stream) that stops is reopened up to
    ``reconnects`` times, ``reconnect_delay`` seconds apart, before :meth:`read` gives up with
    :class:`SourceError`. Network opens and reads time out after ``timeout`` seconds, so nothing blocks for long.
    """

    def __init__(
        self, spec: str | int, timeout: float = 5.0, reconnects: int = 3, reconnect_delay: float = 1.0
    ) -> None:
        spec = str(spec)
        self.spec = spec
        self.kind = "camera" if spec.isdigit() else "stream" if "://" in spec else "file"
        self.timeout, self.reconnects, self.reconnect_delay = timeout, reconnects, reconnect_delay
        if self.kind == "file" and not Path(spec).is_file():
            raise SourceError(f"video file not found: {spec}")
        self._cap: cv2.VideoCapture | None = None
        self._first = self._open_with_retries() if self.kind == "stream" else self._open()
        if self._first is None:
            raise SourceError(self._no_frame_message())
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if self.kind != "camera" and count > 0 else None
        self.live = self.kind == "camera" or self.kind == "stream" and self.frame_count is None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None

    def _no_frame_message(self) -> str:
        if self.kind == "camera":
            return f"camera {self.spec} is not available (no device, or it delivers no frames)"
        if self.kind == "stream":
            return f"cannot open stream {self.spec} ({1 + self.reconnects} attempts, {self.timeout:g} s timeout each)"
        return f"cannot read video {self.spec}: not a video OpenCV can decode, or it has no frames"

    def _open(self) -> np.ndarray | None:
        """(Re)open the capture and return its first frame, or None when it gives none."""
        self._release()
        with _quiet_opencv():
            if self.kind == "camera":
                cap = cv2.VideoCapture(int(self.spec))
            elif self.kind == "stream":
                ms = int(self.timeout * 1000)
                cap = cv2.VideoCapture(
                    self.spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
                )
            else:
                cap = cv2.VideoCapture(self.spec)
            self._cap = cap
            ok, frame = cap.read() if cap.isOpened() else (False, None)
        return frame if ok else None

    def _open_with_retries(self) -> np.ndarray | None:
        frame = self._open()
        for _ in range(self.reconnects):
            if frame is not None:
                break
            time.sleep(self.reconnect_delay)
            frame = self._open()
        return frame

    def read(self) -> np.ndarray | None:
        """The next frame; None at the end of a file. A live source that stopped raises :class:`SourceError`."""
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        if self._cap is None:
            return None
        with _quiet_opencv():
            ok, frame = self._cap.read()
        if ok:
            return frame
        if not self.live:
            self._release()
            return None
        for _ in range(self.reconnects):  # a live source dropped: reopen it
            time.sleep(self.reconnect_delay)
            frame = self._open()
            if frame is not None:
                return frame
        self._release()
        raise SourceError(
            f"{self.kind} {self.spec} stopped delivering frames ({self.reconnects} reconnect attempts failed)"
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        self._release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_writer(path: str | Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    """An MPEG-4 (``mp4v``) writer; :class:`SourceError` if OpenCV cannot write there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_opencv():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SourceError(f"cannot write video {path} (mp4v at {width}x{height})")
    return writer


def fit_transform(w: int, h: int, width: int, height: int) -> tuple[float, tuple[int, int]]:
    """Scale and ``(left, top)`` offset that fit a ``w × h`` image centred into a ``width × height`` frame:
    a point ``p`` of the image is at ``p · scale + offset`` in the frame."""
    scale = min(width / w, height / h)
    return scale, ((width - round(w * scale)) // 2, (height - round(h * scale)) // 2)


def fit_frame(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` resized into a ``width × height`` frame keeping its aspect ratio, centred on black; with the
    scale and offset of :func:`fit_transform`."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image, 1.0, (0, 0)
    scale, (left, top) = fit_transform(w, h, width, height)
    nw, nh = round(w * scale), round(h * scale)
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return frame, scale, (left, top)


def _read_image(item: ImageRecord | str | Path | np.ndarray) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    path = item.path if isinstance(item, ImageRecord) else str(item)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"cannot read image {path}")
    return image


def make_video(
    images: Sequence[ImageRecord | str | Path | np.ndarray],
    path: str | Path,
    fps: float = 25.0,
    hold: int = 1,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write ``images`` (records, paths or BGR arrays) as an mp4v video, each shown for ``hold`` frames.

    The frame size is ``size`` (width, height) or the first image's; other sizes are fitted with
    :func:`fit_frame`. Returns ``path``.
    """
    if not images:
        raise ValueError("make_video needs at least one image")
    if hold < 1:
        raise ValueError(f"hold must be >= 1, got {hold}")
    first = _read_image(images[0])
    width, height = size or (first.shape[1], first.shape[0])
    writer = open_writer(path, fps, width, height)
    try:
        for i, item in enumerate(images):
            frame = fit_frame(first if i == 0 else _read_image(item), width, height)[0]
            for _ in range(hold):
                writer.write(frame)
    finally:
        writer.release()
    return Path(path)
