"""What a node does with an update once it has received it, and what that costs: flash, patch, checks.

A node stores what it receives in flash (TS004: the fragmented data block is kept in non-volatile
memory), builds the new model in the inactive slot of an A/B pair (a full image is the received
block itself; a delta is patched against the running model into the slot; federated layers are
written over the running model's copy), checks the new model's SHA-256 against the digest the update
carries and the vendor's ECDSA P-256 signature over that digest, and flips the slot record (one page
erased, one word written). The model is data the firmware loads, so no reboot: the next window runs
the new model. A node whose image fails the checks, or that never gets the whole update, keeps
running the old slot (the rollback of an A/B scheme). In the simulation a decoded update passes unless
the update's `check_failure` draws the node (a corrupted flash write, power lost while applying, a bad
signature): a LoRaWAN fragment carries a 4-byte MIC, so a corrupted fragment is dropped, not kept (an
undetected error has probability 2^-32 per fragment). The costs below are the work of applying it, paid
whether the checks pass or not.

Costs: flash time from the MCU profile's `flash_write` (pages erased x page erase time + words
programmed x word write time, at `current_ma`); on the CPU, each part measured on the emulated core
and priced by the MCU's cycle model: applying a detools delta (`iotsim.ota.patch_cost`), SHA-256 of
the new model (`iotsim.ota.integrity`) and the signature check (`iotsim.ota.signature`, software
ECDSA: an MCU's crypto accelerator, such as the nRF52840's CryptoCell-310, is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from iotsim.ota.integrity import hash_seconds


@dataclass(frozen=True)
class ApplyCost:
    """One node's work to apply an update: flash erase and program time, and its CPU work."""

    flash_s: float  # erasing and programming, at the MCU's flash_write current
    patch_s: float  # applying a delta to the running model (0 for a full image or new layers)
    hash_s: float  # SHA-256 of the new model
    verify_s: float  # the signature over the digest
    flash_bytes: int  # bytes programmed
    measured: bool  # every CPU part has a measured cost on this MCU (the missing ones count 0)

    @property
    def cpu_s(self) -> float:
        """The CPU's time, at its active current."""
        return self.patch_s + self.hash_s + self.verify_s

    @property
    def seconds(self) -> float:
        return self.flash_s + self.cpu_s


def apply_cost(payload_bytes: int, model_bytes: int, mode: str, mcu, compression: str | None = None) -> ApplyCost | None:
    """The cost on `mcu` of applying an update (None: the MCU profile gives no flash figures). `mode`: "full"
    (the block is the model), "delta" (a detools patch with `compression`) or "head" (new layers written
    over a copy of the running model)."""
    from iotsim.ota.patch_cost import patch_seconds
    from iotsim.ota.signature import verify_seconds

    fw = mcu.flash_write
    if fw is None:
        return None
    erase_s = write_s = 0.0
    written = 0
    pieces = [model_bytes] if mode == "full" else [payload_bytes, model_bytes]  # else: block, then the new model
    for n in (*pieces, fw.word_bytes):  # the last: the slot record (one word in its own page)
        e, w = fw.seconds(n)
        erase_s, write_s, written = erase_s + e, write_s + w, written + n
    parts = [hash_seconds(model_bytes, mcu), verify_seconds(mcu)]
    if mode == "delta":
        parts.append(patch_seconds(payload_bytes, model_bytes, compression or "none", mcu))
    patch = parts[2] if mode == "delta" else 0.0
    return ApplyCost(erase_s + write_s, patch or 0.0, parts[0] or 0.0, parts[1] or 0.0, written,
                     all(p is not None for p in parts))


__all__ = ["ApplyCost", "apply_cost"]
