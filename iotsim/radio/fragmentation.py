"""Application-level fragmentation of messages larger than one frame, vectorized over messages.

One convention, shared by every technology (LoRaWAN, BLE, Wi-Fi):

- a message that fits one frame (``app_bytes <= max_payload``) is sent whole, without a
  fragment header (an empty message still takes one frame);
- a message that does not fit is split into fragments that each carry ``header_bytes`` of
  fragment header (sequence number, count, ...) and up to ``max_payload - header_bytes`` bytes of
  data: all full frames first (``max_payload`` bytes each), then the remainder plus its header.

So for a split message ``sum(payload) - n_frames * header_bytes == app_bytes`` and every frame's
payload is at most ``max_payload``.
"""

from __future__ import annotations

import numpy as np

from iotsim.errors import InputError


def _int_array(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must be whole numbers >= 0, got {values!r}", field=name)
    if arr.size and (np.any(arr < 0) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise InputError(f"{name} must be whole numbers >= 0, got {values!r}", field=name)
    return arr.astype(np.int64)


def _prepare(app_bytes, max_payload, header_bytes):
    if isinstance(header_bytes, bool) or not isinstance(header_bytes, (int, np.integer)) or header_bytes < 0:
        raise InputError(f"header_bytes must be a whole number >= 0, got {header_bytes!r}", field="header_bytes")
    app = np.atleast_1d(_int_array(app_bytes, "app_bytes"))
    if app.ndim != 1:
        raise InputError("app_bytes must be one value per message (a 1-D array)", field="app_bytes")
    cap = _int_array(max_payload, "max_payload")
    cap = np.broadcast_to(cap, app.shape) if cap.ndim == 0 else np.atleast_1d(cap)
    if cap.shape != app.shape:
        raise InputError(f"max_payload must be a scalar or one value per message ({app.shape[0]}), "
                         f"got shape {cap.shape}", field="max_payload")
    header = int(header_bytes)
    needs_split = app > cap
    per_frame = np.where(needs_split, cap - header, cap)
    bad = needs_split & (per_frame <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"fragment header ({header} B) must be smaller than the frame payload limit ({int(cap[i])} B) "
            f"to split a {int(app[i])} B message: no room left for data",
            field="header_bytes",
        )
    n = np.where(needs_split, -(-app // np.maximum(per_frame, 1)), 1).astype(np.int64)
    return app, needs_split, per_frame, header, n


def n_frames(app_bytes, max_payload, header_bytes: int) -> np.ndarray:
    """Number of frames each message takes (int64 array, one per message)."""
    return _prepare(app_bytes, max_payload, header_bytes)[4]


def split_messages(app_bytes, max_payload, header_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split messages into frames: ``(message_index, fragment, payload_bytes)``, one entry per frame.

    ``app_bytes``: application bytes of each message (int64 array); ``max_payload``: largest
    application payload of one frame, per message (array) or for all (scalar);
    ``header_bytes``: fragment header carried by every fragment of a split message.
    Frames come out grouped by message, in message order, fragments 0, 1, ...;
    ``payload_bytes`` is each frame's application payload including its fragment header.

    >>> split_messages(np.array([50, 120]), np.array([51, 51]), 2)
    (array([0, 1, 1, 1]), array([0, 0, 1, 2]), array([50, 51, 51, 24]))
    """
    app, needs_split, per_frame, header, n = _prepare(app_bytes, max_payload, header_bytes)
    message_index = np.repeat(np.arange(app.shape[0], dtype=np.int64), n)
    first = np.zeros(app.shape[0] + 1, dtype=np.int64)
    np.cumsum(n, out=first[1:])
    fragment = np.arange(message_index.shape[0], dtype=np.int64) - first[message_index]
    split = needs_split[message_index]
    pf = per_frame[message_index]
    is_last = fragment == n[message_index] - 1
    data = np.where(is_last, app[message_index] - fragment * pf, pf)
    payload = np.where(split, data + header, app[message_index]).astype(np.int64)
    return message_index, fragment, payload
