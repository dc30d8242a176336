"""Drawing on video frames with OpenCV: detections, a status panel and a per-layer firing-rate bar chart.

Everything draws in place on a BGR uint8 frame and scales with the frame height, so a 320-px test video and a
1080p camera both stay legible. Panels darken what is behind them (a shift, cheaper than blending).
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["class_color", "draw_detections", "draw_panel", "draw_rate_bars"]

FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(index: int) -> tuple[int, int, int]:
    """A distinct, bright BGR colour per class (hues spaced by the golden ratio)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.8, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _scale(frame: np.ndarray) -> float:
    return max(frame.shape[0] / 720, 0.6)


def _darken(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    h, w = frame.shape[:2]
    roi = frame[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    np.right_shift(roi, 1, out=roi)


def draw_detections(frame: np.ndarray, detections: np.ndarray, names: Sequence[str]) -> None:
    """Boxes with "class score" labels; ``detections`` is ``[N, 6]``: ``xyxy`` in frame pixels, score, class."""
    scale = _scale(frame)
    thickness = max(1, round(2 * scale))
    font_scale = 0.6 * scale
    for x1, y1, x2, y2, score, cls in detections.tolist():
        cls = int(cls)
        color = class_color(cls)
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(frame, p1, p2, color, thickness, cv2.LINE_AA)
        name = names[cls] if 0 <= cls < len(names) else str(cls)
        label = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, FONT, font_scale, 1)
        top = p1[1] - th - base - 2 if p1[1] - th - base - 2 >= 0 else p1[1]  # inside the box at the top edge
        cv2.rectangle(frame, (p1[0], top), (p1[0] + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(frame, label, (p1[0] + 1, top + th + 1), FONT, font_scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_panel(frame: np.ndarray, lines: Sequence[str], origin: tuple[int, int] = (0, 0)) -> None:
    """White text lines on a darkened box at ``origin`` (top-left corner)."""
    scale = _scale(frame)
    font_scale, pad = 0.6 * scale, max(3, round(6 * scale))
    sizes = [cv2.getTextSize(line, FONT, font_scale, 1)[0] for line in lines]
    step = max(h for _, h in sizes) + pad
    x0, y0 = origin
    _darken(frame, x0, y0, x0 + max(w for w, _ in sizes) + 2 * pad, y0 + step * len(lines) + pad)
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (x0 + pad, y0 + (i + 1) * step), FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_rate_bars(frame: np.ndarray, rates: Sequence[float]) -> None:
    """A bar per neuron layer (input to output) in the bottom-right corner, scaled to the largest rate."""
    if not len(rates):
        return
    h, w = frame.shape[:2]
    scale = _scale(frame)
    pw, ph = max(int(w * 0.3), 2 * len(rates) + 8), max(int(h * 0.16), 40)
    x0, y0 = w - pw, h - ph
    _darken(frame, x0, y0, w, h)
    top = max(rates)
    cv2.putText(frame, f"rate/layer, max {top:.2f}", (x0 + 4, y0 + round(14 * scale)), FONT, 0.45 * scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    bottom, height = h - 4, ph - round(22 * scale)
    edges = np.linspace(x0 + 4, w - 4, len(rates) + 1).astype(int)
    for rate, left, right in zip(rates, edges[:-1], edges[1:]):
        bar = int(height * rate / top) if top > 0 else 0
        cv2.rectangle(frame, (left, bottom - bar), (max(left, right - 1), bottom), (0, 200, 255), -1)
