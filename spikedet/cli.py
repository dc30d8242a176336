"""Shared behaviour of the command-line tools: expected errors become one clear line and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

__all__ = ["ToolParser", "run_cli", "parse_assignments", "parse_settings", "parse_timesteps", "resolved_precision", "write_results"]


class ToolParser(argparse.ArgumentParser):
    """argparse whose errors are one line like every other error of the tools: ``error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parse_timesteps(text: str) -> list[int]:
    """``"4"`` or ``"1,2,4,8"`` → ``[4]`` / ``[1, 2, 4, 8]``; anything else is a ValueError."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.lstrip("-").isdigit():
            raise ValueError(f"--T expects integers >= 1 separated by commas, got '{text}'")
        values.append(int(part))
    if any(v < 1 for v in values):
        raise ValueError(f"--T expects integers >= 1, got '{text}'")
    return values


def parse_assignments(items: list[str], flag: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options → a dict; a missing ``=`` or a repeated key is a ValueError (saying
    ``flag`` expects ``form``)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{flag} expects {form}, got '{item}'")
        if key.strip() in out:
            raise ValueError(f"{flag} given twice for '{key.strip()}'")
        out[key.strip()] = value.strip()
    return out


def parse_settings(items: list[str], flag: str) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` options with typed values (``8`` → int, ``true`` → bool, ``1e-4`` → float, other
    text → str)."""
    from .recipes import parse_scalar

    return {key: parse_scalar(value) for key, value in parse_assignments(items, flag).items()}


def resolved_precision(text: str, *, device: str = "cpu") -> str:
    """The concrete precision ``--precision text`` stands for on ``device``; prints ``auto``'s one line when it
    falls back."""
    from .spiking.hardware import resolve_precision  # torch: imported inside the job, after parsing

    precision, note = resolve_precision(text, device=device)
    if note:
        print(note)
    return precision


def run_cli(job: Callable[[], None]) -> None:
    """Run ``job``; a user error (bad data, checkpoint, argument) prints ``error: ...`` and exits with 2."""
    from .checkpoint import CheckpointError
    from .data.records import DatasetError
    from .spiking.convert import ConversionError

    try:
        job()
    except (CheckpointError, DatasetError, ConversionError, ValueError, OSError) as err:  # OSError: unreadable or unwritable paths
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def write_results(result: dict[str, Any], path: Path) -> None:
    """A benchmark's results as indented JSON at ``path`` (folders made as needed), and the line saying where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"results: {path}")
