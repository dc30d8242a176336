"""Whether an image file can be used, and its size as the pixels will be used.

Orientation: spikedet applies the EXIF orientation, as OpenCV's ``imread`` (evaluation, SSD training) and
ultralytics (YOLO training) do when they decode. A record therefore takes the upright size, and annotations are
read in the upright frame, the one every viewer and labelling tool shows.

Decoding: the header alone does not reveal a truncated file (OpenCV fills the missing part with grey and only
prints a libjpeg warning), so each image is decoded once; JPEGs at 1/8 scale, which still reads their whole
entropy-coded stream and keeps probing a split cheap.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Callable

from PIL import Image

__all__ = ["MAX_IMAGE_PIXELS", "MIN_TRAIN_SIDE", "check_image"]

# Larger images are refused before decoding: a header can declare 30000 x 30000 in a few hundred bytes (a
# decompression bomb); no detector input needs anywhere near this many pixels.
MAX_IMAGE_PIXELS = 100_000_000
# ultralytics skips images with a side under 10 px when it builds its training set.
MIN_TRAIN_SIDE = 10
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # orientations that rotate by 90 degrees: width and height swap


def _upright_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError):  # a damaged EXIF block: decoders ignore it too
        orientation = None
    return (height, width) if orientation in _TRANSPOSED else (width, height)


def _pillow_open() -> Callable[..., Image.Image]:
    """Pillow's own ``Image.open``. ultralytics replaces it with one that, on any file Pillow cannot identify,
    looks for a HEIF plugin and logs a misleading "requirement pi-heif not found" line per broken image."""
    return getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", Image.open)


def check_image(path: str | Path) -> tuple[tuple[int, int] | None, str | None]:
    """``((width, height), None)`` for a usable image (upright size), or ``(None, reason)`` with a short reason
    (``"unreadable"``, ``"truncated"``, ``"too large"``) for one that is not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below applies
            with _pillow_open()(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    return None, f"too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
                size = _upright_size(im)
                if im.format in ("JPEG", "MPO"):
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                try:
                    im.load()
                except OSError as err:
                    return None, "truncated" if "truncated" in str(err) else "unreadable"
    except Image.DecompressionBombError:
        return None, f"too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
    except (OSError, SyntaxError, ValueError):  # PIL reports broken files through all three
        return None, "unreadable"
    except ImportError:  # a later ultralytics whose patched open we did not find: its HEIF import fails offline
        return None, "unreadable"
    return size, None
