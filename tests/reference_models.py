"""The MLPerf Tiny reference models the tests read from ../shared (skip when they are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotsim.paths import mlperf_dir

MLPERF_DIR = mlperf_dir()


def mlperf_model(name: str) -> Path:
    """Path of an MLPerf Tiny file (e.g. "kws_ref_model.tflite"); skips the test if it is missing."""
    path = MLPERF_DIR / name
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny reference model not found: {path} (set IOTSIM_MLPERF_DIR)")
    return path
