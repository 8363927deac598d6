"""Result cache of single runs, keyed by what determines a run's result.

A run's key is the SHA-256 of: the validated scenario after overrides (canonical JSON; it holds
the seed), the iotsim version, and the content of what the scenario names outside itself: each
model file and card, and the inference cost the engine will use (so a new firmware measurement
or a retrained model is a new key). The iotsim version is the package version plus a fingerprint
of the installed code and data (Python and C sources, zoo, signal data, device profiles), so a code change
never serves a stale result.

Each finished run is one JSON file `<root>/<key[:2]>/<key>.json`, written to a temporary file in
the same folder and renamed into place: a run killed at any moment leaves either a whole record
or none (a stray temporary file, ignored and cleaned up later).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import iotsim
from iotsim.paths import PACKAGE_DIR, devices_dir, user_cache_dir
from iotsim.files import atomic_write

RECORD_FORMAT = 1
_FINGERPRINT_SUFFIXES = {".py", ".c", ".h", ".tflite", ".json", ".npz", ".csv", ".yaml", ".yml"}  # C: the kernels and loops


@lru_cache(maxsize=None)
def code_version() -> str:
    """`<package version>+<12 hex digits of the code and data fingerprint>`."""
    digest = hashlib.sha256()
    for root in (PACKAGE_DIR, devices_dir()):
        files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
                       and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{iotsim.__version__}+{digest.hexdigest()[:12]}"


def user_run_cache() -> Path:
    """The shared run cache: `runs/` in iotsim's user cache (iotsim.paths.user_cache_dir)."""
    return user_cache_dir() / "runs"


def run_inputs(scenario, resources: dict) -> dict[str, Any]:
    """What each fleet group's results depend on outside the scenario text: model and cloud model
    bytes, cards and the inference cost source. `resources` caches loaded models across calls."""
    from iotsim.engine.fleet import inference_cost
    from iotsim.engine.run import load_group_resources

    out = {}
    for index, spec in enumerate(scenario.fleet):
        board, _, model, cloud_model = load_group_resources(scenario, index, resources)
        seconds, source = inference_cost(model, board.mcu)
        out[spec.group] = {
            "model_sha256": model.sha256,
            "model_card": model.card,
            "cloud_model_sha256": cloud_model.sha256,
            "inference_time_s": seconds,
            "inference_cost": source,
        }
    return out


def run_key(scenario, inputs: dict[str, Any], version: str | None = None) -> str:
    """The cache key of one run of `scenario` (its seed included)."""
    material = {
        "scenario": scenario.model_dump(mode="json"),
        "inputs": inputs,
        "iotsim": version or code_version(),
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (plain JSON); everything else as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class RunCache:
    """Finished runs on disk, one atomic JSON file each."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: recomputed and replaced
        if record.get("format") != RECORD_FORMAT or record.get("key") != key:
            return None
        return record

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, record: dict) -> Path:
        record = {"format": RECORD_FORMAT, "key": key, **record}
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_json_safe(record), sort_keys=True, separators=(",", ":"))
        atomic_write(path, lambda tmp: tmp.write_text(text), sync=True)
        return path

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("??/*.json") if not p.name.startswith("."))

    def remove_stale_temporaries(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files left by a killed writer (only old ones: another sweep may be writing)."""
        now = time.time()
        removed = 0
        for tmp in self.root.glob("??/.*.tmp-*"):
            try:
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()
                    removed += 1
            except OSError:
                pass
        return removed
