"""What an update sends: the new model file whole, or its delta from the model the node runs.

Deltas are made with detools (the `updates` extra; sequential patches, as its C library applies them on a
microcontroller), compressed with heatshrink by default: the compressor detools offers for small
RAM (lzma, crle and none are the others). The delta of identical files is near empty; applying a
delta to the old file gives the new one byte for byte (both tested).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from iotsim.errors import InputError

COMPRESSIONS = ("heatshrink", "lzma", "crle", "none")
"""detools' compressions a microcontroller can apply (its C library: heatshrink, lzma, crle, none)."""
MODES = ("delta", "full")


def _detools():
    try:
        import detools  # noqa: PLC0415 (only delta updates need it)
    except ImportError:
        raise InputError("delta updates need detools: pip install -e '.[updates]' (it builds from source with a C "
                         "compiler), or send the whole model (mode: full)", field="updates") from None
    return detools


def create_delta(old: bytes, new: bytes, compression: str = "heatshrink") -> bytes:
    """A detools sequential patch from `old` to `new`."""
    detools = _detools()
    if compression not in COMPRESSIONS:
        raise InputError(f"unknown delta compression {compression!r}: one of {', '.join(COMPRESSIONS)}",
                         field="updates")
    out = io.BytesIO()
    detools.create_patch(io.BytesIO(old), io.BytesIO(new), out, compression=compression)
    return out.getvalue()


def apply_delta(old: bytes, delta: bytes) -> bytes:
    """`old` patched with `delta` (what the node's bootloader does)."""
    detools = _detools()
    out = io.BytesIO()
    detools.apply_patch(io.BytesIO(old), io.BytesIO(delta), out)
    return out.getvalue()


@dataclass(frozen=True)
class UpdatePayload:
    """The bytes an update carries to each node."""

    mode: str  # "delta" or "full"
    payload_bytes: int
    new_model_bytes: int
    old_model_bytes: int
    compression: str | None


def update_payload(old: bytes | Path, new: bytes | Path, mode: str = "delta",
                   compression: str = "heatshrink") -> UpdatePayload:
    """The payload of an update from model `old` to model `new` (file contents or paths)."""
    old_b = Path(old).read_bytes() if isinstance(old, Path) else old
    new_b = Path(new).read_bytes() if isinstance(new, Path) else new
    if mode not in MODES:
        raise InputError(f"unknown update mode {mode!r}: one of {', '.join(MODES)}", field="updates")
    if mode == "full":
        return UpdatePayload("full", len(new_b), len(new_b), len(old_b), None)
    return UpdatePayload("delta", len(create_delta(old_b, new_b, compression)), len(new_b), len(old_b), compression)


__all__ = ["COMPRESSIONS", "MODES", "UpdatePayload", "apply_delta", "create_delta", "update_payload"]
