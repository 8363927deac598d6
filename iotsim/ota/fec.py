"""Fragmented data block transport with forward error correction (LoRa Alliance TS004-1.0.0).

A data block (an update image or delta) is cut into M fragments of equal size (the last one padded).
The sender transmits them uncoded (fragments 1..M), then coded fragments M+1..N: coded fragment
M+n is the XOR of the uncoded fragments whose bit is set in row n of the specification's parity
matrix. A receiver that lost some uncoded fragments recovers them from the coded ones it received,
by Gaussian elimination over GF(2), once those rows span the missing fragments.

Sources:
- LoRa Alliance TS004-1.0.0 "Fragmented Data Block Transport" (2018): DataFragment command (CID 0x08,
  2-byte IndexAndN: FragIndex in 2 bits, N in 14 bits, then the fragment), the parity matrix
  generator (`matrix_line` with the PRBS23 generator, annex) and its use for N > M.
- The generator as implemented by Semtech's LoRaMac-node FragDecoder.c (FragGetParityMatrixRow,
  FragPrbs23): x = 1 + 1001 n; M/2 times draw r = x mod (M + m) with x = prbs23(x) until r < M
  (m = 1 when M is a power of two, else 0) and set bit r. A published check of PRBS23: starting
  from 1001 it gives 0x1F4, then 0x4000FA (the flash_algo crate's documented example).

Written here from the specification's description; the decoder is a plain GF(2) elimination (the
result is the same for any correct elimination order). Rows are Python ints (bit j = uncoded
fragment j, 0-based).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from iotsim.errors import InputError

DATA_FRAGMENT_HEADER_BYTES = 3
"""A DataFragment command before its fragment: CID (1 byte) + IndexAndN (2 bytes) (TS004-1.0.0)."""
MAX_FRAGMENTS = 2**14 - 1
"""N is a 14-bit field of IndexAndN: fragments are numbered 1..16383 (TS004-1.0.0)."""


def prbs23(x: int) -> int:
    """The specification's 23-bit pseudo-random sequence generator (one step)."""
    return (x >> 1) | (((x ^ (x >> 5)) & 1) << 22)


def _is_power_of_two(m: int) -> bool:
    return m > 0 and m & (m - 1) == 0


@lru_cache(maxsize=65536)
def parity_row(n: int, m: int) -> int:
    """Row n (1 for the first coded fragment, M + 1) of the parity matrix for M = m uncoded fragments."""
    if m < 1 or n < 1:
        raise ValueError("parity_row needs n >= 1 and m >= 1")
    mod = m + (1 if _is_power_of_two(m) else 0)
    x = 1 + 1001 * n
    row = 0
    for _ in range(m >> 1):
        r = m
        while r >= m:
            x = prbs23(x)
            r = x % mod
        row |= 1 << r
    if m == 1:  # M/2 = 0 draws: the specification's matrix has no coefficient; repeat the fragment
        row = 1
    return row


@dataclass(frozen=True)
class Fragments:
    """A data block cut into fragments: `uncoded` (M) plus the coded ones, `total` (N) in all."""

    block_bytes: int
    fragment_bytes: int
    uncoded: int
    total: int
    padding_bytes: int

    @property
    def redundancy(self) -> int:
        return self.total - self.uncoded


def cut(block_bytes: int, fragment_bytes: int, redundancy: float) -> Fragments:
    """How a block of `block_bytes` is sent in fragments of `fragment_bytes` with `redundancy` coded
    fragments per uncoded one (0.2: 20 % more fragments, rounded up)."""
    if block_bytes < 1:
        raise InputError(f"an update of {block_bytes} bytes: nothing to send", field="updates")
    if fragment_bytes < 1:
        raise InputError(f"fragments of {fragment_bytes} bytes: the data rate leaves no room for a fragment",
                         field="updates")
    if redundancy < 0:
        raise InputError(f"FEC redundancy {redundancy} is negative", field="updates")
    m = -(-block_bytes // fragment_bytes)
    total = m + int(-(-m * redundancy // 1))
    if total > MAX_FRAGMENTS:
        raise InputError(f"{total} fragments of {fragment_bytes} B: TS004 numbers at most {MAX_FRAGMENTS} "
                         "(use larger fragments, a faster data rate or less redundancy)", field="updates")
    return Fragments(block_bytes, fragment_bytes, m, total, m * fragment_bytes - block_bytes)


def encode(block: bytes, fragment_bytes: int, total: int) -> list[bytes]:
    """The N = `total` fragments of `block`: the M uncoded ones (the last padded with zeros), then the
    coded ones."""
    m = -(-len(block) // fragment_bytes)
    padded = block + bytes(m * fragment_bytes - len(block))
    frags = [padded[i * fragment_bytes:(i + 1) * fragment_bytes] for i in range(m)]
    as_int = [int.from_bytes(f, "little") for f in frags]
    out = list(frags)
    for n in range(1, total - m + 1):
        row, acc, j = parity_row(n, m), 0, 0
        while row:
            if row & 1:
                acc ^= as_int[j]
            row >>= 1
            j += 1
        out.append(acc.to_bytes(fragment_bytes, "little"))
    return out


class Decoder:
    """A receiver of one fragmented block: feed fragments (1-based index, payload) in any order;
    `complete` once every uncoded fragment is known; `block()` gives the data back. Without payloads
    only the bookkeeping runs (whether and after how many fragments a receiver can decode)."""

    def __init__(self, uncoded: int, fragment_bytes: int = 1, block_bytes: int = 1):
        self.m = uncoded
        self.fragment_bytes = fragment_bytes
        self.block_bytes = block_bytes
        self.missing = (1 << uncoded) - 1  # bit j: uncoded fragment j (0-based) not known yet
        self.known: dict[int, int] = {}  # uncoded fragment -> its payload as an int (payloads tracked)
        # reduced rows over the missing fragments: pivot column -> (row, payload); no pivot row has
        # another pivot's column
        self.pivots: dict[int, tuple[int, int]] = {}
        self.received = 0

    @property
    def complete(self) -> bool:
        return not self.missing

    def add(self, index: int, payload: bytes | None = None) -> bool:
        """Take fragment `index` (1..N). Returns whether the block is complete."""
        self.received += 1
        if not self.missing:
            return True
        row = (1 << (index - 1)) if index <= self.m else parity_row(index - self.m, self.m)
        rest = row & self.missing
        value = 0
        if payload is not None:
            value = int.from_bytes(payload, "little")
            done = row & ~self.missing  # substitute the fragments already known
            while done:
                low = done & -done
                value ^= self.known[low.bit_length() - 1]
                done ^= low
        for col, (prow, pval) in self.pivots.items():
            if rest >> col & 1:
                rest ^= prow
                value ^= pval
        if not rest:
            return False  # nothing new
        col = (rest & -rest).bit_length() - 1
        for c, (prow, pval) in self.pivots.items():
            if prow >> col & 1:
                self.pivots[c] = (prow ^ rest, pval ^ value)
        self.pivots[col] = (rest, value)
        # pivot rows left with one column are known fragments (the others hold no pivot column, so
        # nothing else changes)
        for c in [c for c, (prow, _) in self.pivots.items() if prow & (prow - 1) == 0]:
            _, pval = self.pivots.pop(c)
            self.missing &= ~(1 << c)
            if payload is not None:
                self.known[c] = pval
        return not self.missing

    def add_uncoded_received(self, received_mask: int, payloads: dict[int, bytes] | None = None) -> None:
        """Take every uncoded fragment of `received_mask` (bit j: fragment j + 1) at once (before any
        coded one): the fast path for many receivers."""
        self.received += received_mask.bit_count()
        self.missing &= ~received_mask
        if payloads is not None:
            for j, p in payloads.items():
                self.known[j] = int.from_bytes(p, "little")

    def block(self) -> bytes:
        if self.missing:
            raise ValueError(f"the block is not complete: {self.missing.bit_count()} fragments missing")
        data = b"".join(self.known[j].to_bytes(self.fragment_bytes, "little") for j in range(self.m))
        return data[:self.block_bytes]


__all__ = ["DATA_FRAGMENT_HEADER_BYTES", "MAX_FRAGMENTS", "Decoder", "Fragments", "cut", "encode", "parity_row",
           "prbs23"]
