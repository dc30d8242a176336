"""Offline configuration for ultralytics.

ultralytics reads its environment once, at import time: it probes the network, may pip-install missing
packages, downloads fonts and AMP-check weights, and syncs settings. Importing this module first pins all of
that off and keeps its settings inside a cache directory spikedet owns. Every spikedet module that needs
ultralytics imports it through :func:`import_ultralytics`.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_dir", "configure_offline", "font_available", "import_ultralytics", "quiet", "torch_threads_kept"]


def cache_dir() -> Path:
    """The directory spikedet owns for generated data, ultralytics settings and exported datasets.

    ``$SPIKEDET_CACHE`` if set, else ``$XDG_CACHE_HOME/spikedet``, else ``~/.cache/spikedet``.
    """
    root = os.environ.get("SPIKEDET_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "spikedet")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet() -> bool:
    """Whether the user asked for no progress bars or per-epoch lines (``--quiet`` sets ``SPIKEDET_QUIET=1``)."""
    return bool(os.environ.get("SPIKEDET_QUIET"))


def configure_offline() -> None:
    """Set the environment ultralytics reads at import so it never touches the network."""
    os.environ["YOLO_OFFLINE"] = "1"  # skips the DNS probe: ultralytics.utils.ONLINE becomes False
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install a "missing" requirement
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    # ultralytics' progress bars and per-epoch lines are what users watch; SPIKEDET_QUIET=1 (--quiet) hides them
    os.environ.setdefault("YOLO_VERBOSE", "false" if quiet() else "true")
    _provide_font(Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics")


def _provide_font(folder: Path) -> None:
    """Give ultralytics a local font so ``check_font`` never downloads one.

    ``check_det_dataset`` and the plotting code always ask for Arial.ttf (Arial.Unicode.ttf for non-ASCII
    class names) and fetch it from the internet when it is not in the config folder. matplotlib ships
    DejaVu Sans; a copy under those names satisfies the lookup, and plots are drawn in DejaVu Sans.
    """
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / name for name in ("Arial.ttf", "Arial.Unicode.ttf")]
    if all(t.exists() for t in targets):
        return
    try:
        import matplotlib
    except ImportError:
        return
    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if source.is_file():
        for target in targets:
            if not target.exists():
                shutil.copyfile(source, target)


def font_available() -> bool:
    """True when ultralytics can draw plots without downloading a font."""
    config = Path(os.environ.get("YOLO_CONFIG_DIR", cache_dir() / "ultralytics")) / "Ultralytics"
    if (config / "Arial.ttf").exists():
        return True
    try:
        from matplotlib import font_manager
    except ImportError:
        return False
    return any("Arial" in Path(f).name for f in font_manager.findSystemFonts())


def import_ultralytics():
    """Import ultralytics with the offline environment in place and settings sync disabled."""
    configure_offline()
    import ultralytics
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})
    return ultralytics


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Keep torch's thread count through ultralytics calls that pick a device.

    ultralytics' ``select_device`` sets CPU runs to ``cpu_count - 1`` threads, a core left for loader workers.
    spikedet loads CPU batches in the main process (``workers=0``), so on a 2-core machine that halved every
    CPU training and validation (measured: one busy core through a whole fine-tuning run).
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
