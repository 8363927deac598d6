"""What a node does with an update once it has received it, and what that costs: flash and integrity check.

A node stores what it receives in flash (TS004: the fragmented data block is kept in non-volatile
memory), builds the new model in the inactive slot of an A/B pair (a full image is the received
block itself; a delta is patched against the running model into the slot), checks the new model's
SHA-256 against the digest the update carries, and flips the slot record (one page erased, one word
written). The model is data the firmware loads, so no reboot: the next window runs the new model. A
node whose image fails the check, or that never gets the whole update, keeps running the old slot
(the rollback of an A/B scheme); in the simulation every decoded update passes, so the costs below are
those of a successful update.

Costs: flash time from the MCU profile's `flash_write` (pages erased x page erase time + words
programmed x word write time, at `current_ma`); the hash from SHA-256's instruction counts measured
on the emulated core (`iotsim.ota.integrity`) priced by the MCU's cycle model. Not modelled: the CPU
time of applying a delta patch, and signature verification.
"""

from __future__ import annotations

from dataclasses import dataclass

from iotsim.ota.integrity import hash_seconds


@dataclass(frozen=True)
class ApplyCost:
    """One node's work to apply an update: flash erase and program time, and its integrity check."""

    flash_s: float  # erasing and programming, at the MCU's flash_write current
    check_s: float  # SHA-256 of the new model on the CPU, at its active current (0: not measured for this MCU)
    flash_bytes: int  # bytes programmed
    check_measured: bool

    @property
    def seconds(self) -> float:
        return self.flash_s + self.check_s


def apply_cost(payload_bytes: int, model_bytes: int, mode: str, mcu) -> ApplyCost | None:
    """The cost on `mcu` of applying an update (None: the MCU profile gives no flash figures)."""
    fw = mcu.flash_write
    if fw is None:
        return None
    erase_s = write_s = 0.0
    written = 0
    pieces = [model_bytes] if mode == "full" else [payload_bytes, model_bytes]  # a delta: block, then patched model
    for n in (*pieces, fw.word_bytes):  # the last: the slot record (one word in its own page)
        e, w = fw.seconds(n)
        erase_s, write_s, written = erase_s + e, write_s + w, written + n
    check = hash_seconds(model_bytes, mcu)
    return ApplyCost(erase_s + write_s, 0.0 if check is None else check, written, check is not None)


__all__ = ["ApplyCost", "apply_cost"]
