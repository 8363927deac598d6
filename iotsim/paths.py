"""Where the project's data folders live (device profiles, scenarios, model zoo)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ZOO_DIR = PACKAGE_DIR / "zoo"


def devices_dir() -> Path:
    """Device profiles: $IOTSIM_DEVICES if set, else the repository's devices/ folder."""
    return Path(os.environ.get("IOTSIM_DEVICES", REPO_DIR / "devices"))


def user_cache_dir() -> Path:
    """iotsim's user cache (firmware cost tables, the QEMU plugin, sweep runs): $IOTSIM_CACHE_DIR,
    else $XDG_CACHE_HOME/iotsim, else ~/.cache/iotsim."""
    if os.environ.get("IOTSIM_CACHE_DIR"):
        return Path(os.environ["IOTSIM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iotsim"


FIRMWARE_REF_DIR = REPO_DIR / "firmware_ref"  # the reference C firmware (kernels, boards, scripts)


def mlperf_dir() -> Path:
    """The MLPerf Tiny reference models (test and benchmark data, not shipped): $IOTSIM_MLPERF_DIR,
    else ../shared/reference/mlperf_tiny beside the repository."""
    return Path(os.environ.get("IOTSIM_MLPERF_DIR", REPO_DIR.parent / "shared" / "reference" / "mlperf_tiny"))
