"""What a node's signature check of an update costs: ECDSA P-256 verification, measured on the emulated MCU.

Before a node activates an update it hashes the image (SHA-256: `iotsim.ota.integrity`) and verifies
the vendor's ECDSA P-256 signature over that digest, as MCUboot does for a signed image and as the
LoRa Alliance FUOTA practice does for a signed update. The cost is measured, not assumed:
`measure()` builds `firmware_ref/signature/p256_verify.c` into the reference firmware as if it were a
model (160 bytes in: digest, public key x and y, signature r and s; 1 byte out: the verdict), runs it
on QEMU with the instruction-counting plugin over `vectors` valid signatures (keys, digests and
RFC 6979 deterministic signatures made by Python's `cryptography`, seeded: reproducible) and a fixed set
of invalid ones (digest, r, s or key corrupted; another signer's key; a key off the curve; r = 0,
s = n), checks every verdict against `cryptography`'s, and returns the instruction-class counts of the
median valid vector and the spread (fewest, most instructions) over the valid ones.

The firmware's algorithm (clean-room, from SEC 1 v2 4.1.4, FIPS 186-4 D.1.2.3 and D.2.3 and
Hankerson-Menezes-Vanstone's "Guide to Elliptic Curve Cryptography"; details in the C file): 32-bit
limbs with 64-bit products, the schoolbook limb product then FIPS 186-4's fast reduction mod p (squares
through the same product), binary extended Euclid for the inverses mod p and mod n, Montgomery
products mod n, Jacobian coordinates with mixed additions, and u1 G + u2 Q by Shamir's trick (one joint
double-and-add over the 256 bit pairs). Its work depends on the bits of u1 and u2 (an addition for each
nonzero pair, about 3/4 of them) and on the inverses' inputs, so the count varies from vector to vector:
the spread is recorded. Rejections for a malformed signature or key (r or s out of range, a key off the
curve) cost almost nothing; a well-formed but wrong signature costs a full verification.

This is the software cost of a portable C implementation. An optimized library does better: micro-ecc
and similar ones write the limb products in assembly (UMAAL on the Cortex-M4) with the reduction fused
in, square with a dedicated routine, and may use windows or a precomputed comb for the fixed G; an
MCU's crypto accelerator does better still: the nRF52840 has an Arm CryptoCell-310 that verifies P-256
signatures in hardware. That accelerator is not modelled: the figure here is what the Cortex-M4 core
spends when the firmware verifies in software.

Measured 2026-12-04 (Cortex-M4, gcc 12.2 -O2): the median of nine valid signatures takes 5.30 M
instructions (5.05 to 5.42 M over the nine; a well-formed wrong signature as many, a malformed one a few
hundred, a key off the curve 3.6 k), of which 281 k are UMULL/UMLAL limb products: about 4,400 field
products. Priced by the cycle models: 7.63 M cycles on the nRF52840 (119 ms at 64 MHz; 114 to 122 ms
over the nine), 7.96 M on the STM32L4R5 (66 ms at 120 MHz, its flash wait states included). That is
about 11 times the SHA-256 of a 10.7 kB model on the same core (`integrity.hash_seconds`: 10.9 ms on
the nRF52840), so on a small update the signature, not the hash, is the check's main cost. Published
software figures bracket it: Emil Lenngren's P256-Cortex-M4 (hand-written assembly) verifies in 976 k
cycles, 15.3 ms, on an nRF52840 at 64 MHz (github.com/Emill/P256-Cortex-M4, README "Performance":
measured, gcc -O2, ICACHE on), 7.8 times fewer cycles; SEGGER's emCrypt (generic C multi-precision code,
32-bit limbs, twin multiplication) verifies secp256r1 in 82.91 ms on a 168 MHz Cortex-M4 (NXP
MK66FN2M0), 13.9 M cycles with that part's flash wait states (kb.segger.com/ECDSA_Sign_Verify_MK66FN2M0,
2019, gcc 8.2.1). No published CryptoCell-310 verification time was found in the corpora searched.

`RECORDED` holds the counts measured for the Cortex-M4 (the command below reproduces them; a test
re-measures and compares); a node's verification time is then cycles (the MCU's cycle model,
`iotsim.firmware.cycles`) / clock:

    python -m iotsim.ota.signature            # prints the counts to record
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from iotsim.errors import InputError
from iotsim.paths import FIRMWARE_REF_DIR

SOURCE = FIRMWARE_REF_DIR / "signature" / "p256_verify.c"
BOARD = "mps2-an386"  # QEMU's Cortex-M4 board (the firmware's default)
INPUT_BYTES = 160  # digest 32, public key x and y 64, signature r and s 64 (all big-endian)
OUTPUT_BYTES = 1  # the verdict: 1 valid, 0 not
VECTORS = 9  # valid signatures measured (an odd number: one median vector)
SEED = 2026_12_04  # of the keys and digests

# P-256 (FIPS 186-4 D.1.2.3; SEC 2 v2 2.4.2)
P = 2**256 - 2**224 + 2**192 + 2**96 - 1  # the field's prime
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of G


@dataclass(frozen=True)
class Case:
    """One verification's input (integers as the firmware reads them, big-endian) and what it is."""

    name: str
    digest: bytes  # 32 bytes: the SHA-256 of the image
    qx: int  # the public key
    qy: int
    r: int  # the signature
    s: int

    def pack(self) -> bytes:
        """The firmware's 160 input bytes."""
        return self.digest + b"".join(v.to_bytes(32, "big") for v in (self.qx, self.qy, self.r, self.s))


@dataclass(frozen=True)
class SignatureCounts:
    """Instruction-class counts of one ECDSA P-256 verification on one core (the median valid vector) and
    the spread of the instruction count over the valid vectors measured."""

    core: str
    caches: str | None  # the flash caches the miss counts were simulated with (plugin arguments)
    classes: dict  # instruction-class counts of the median valid vector (iotsim.firmware.cycles.COUNTERS)
    instructions_min: int  # fewest instructions of a valid vector
    instructions_max: int  # most instructions of a valid vector
    vectors: int  # valid vectors measured


def verify_seconds(mcu) -> float | None:
    """Seconds the MCU's core takes to verify one signature in software (the median vector; None: its
    core has no recorded counts or it has no cycle model). A crypto accelerator is not modelled."""
    from iotsim.firmware.cycles import cycles
    from iotsim.firmware.routine import recorded_params

    found = recorded_params(mcu, RECORDED)
    if found is None:
        return None
    rec, params = found
    return cycles(rec.classes, params, caches=rec.caches) / mcu.clock_hz


# ---- test vectors, made and judged by `cryptography` ------------------------------------------------
def _ec():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils
    except ImportError as exc:
        raise InputError("measuring ECDSA verification needs the `cryptography` package (pip install cryptography) "
                         "to make and check the test signatures") from exc
    return ec, utils, hashes, InvalidSignature


def has_deterministic_ecdsa() -> bool:
    """Whether the installed `cryptography` signs deterministically (RFC 6979), which reproducible vectors need."""
    import inspect

    try:
        ec = _ec()[0]
    except InputError:
        return False
    return "deterministic_signing" in inspect.signature(ec.ECDSA).parameters


def _sign(d: int, digest: bytes) -> tuple[int, int, int, int]:
    """(Qx, Qy, r, s) for private key d over a 32-byte digest: RFC 6979 deterministic ECDSA."""
    ec, utils, hashes, _ = _ec()
    if not has_deterministic_ecdsa():
        raise InputError("the installed `cryptography` has no deterministic ECDSA (ec.ECDSA(..., "
                         "deterministic_signing=True)): upgrade it to make reproducible test signatures")
    key = ec.derive_private_key(d, ec.SECP256R1())
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    pub = key.public_key().public_numbers()
    return pub.x, pub.y, r, s


def cryptography_verdict(case: Case) -> bool:
    """`cryptography`'s verdict on a case (a key off the curve or out of range: invalid)."""
    ec, utils, hashes, InvalidSignature = _ec()
    try:
        pub = ec.EllipticCurvePublicNumbers(case.qx, case.qy, ec.SECP256R1()).public_key()
    except ValueError:
        return False
    try:
        pub.verify(utils.encode_dss_signature(case.r, case.s), case.digest,
                   ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def cases(vectors: int = VECTORS, seed: int = SEED) -> list[Case]:
    """`vectors` valid signatures ("valid 0", ...: a fresh key and image each), then the invalid and edge
    cases made from the first two: a bit of the digest, r, s or the key's y flipped ("digest", "r", "s",
    "key off curve"), another signer's key ("key"), r = 0, s = n, and the valid twin (r, n - s) ("n - s")."""
    if vectors < 2:
        raise InputError("measure at least 2 valid signatures", field="vectors")
    rng = random.Random(seed)
    valid = []
    for i in range(vectors):
        d = rng.randrange(1, N)
        digest = hashlib.sha256(rng.randbytes(1024)).digest()  # an update image's digest
        valid.append(Case(f"valid {i}", digest, *_sign(d, digest)))
    a, b = valid[0], valid[1]
    flip = 1 << 77  # a bit inside every field (r, s < n and y < p keep their range)
    rest = [
        Case("digest", bytes([a.digest[0] ^ 0x01]) + a.digest[1:], a.qx, a.qy, a.r, a.s),
        Case("r", a.digest, a.qx, a.qy, a.r ^ flip, a.s),
        Case("s", a.digest, a.qx, a.qy, a.r, a.s ^ flip),
        Case("key", a.digest, b.qx, b.qy, a.r, a.s),
        Case("key off curve", a.digest, a.qx, a.qy ^ flip, a.r, a.s),
        Case("r = 0", a.digest, a.qx, a.qy, 0, a.s),
        Case("s = n", a.digest, a.qx, a.qy, a.r, N),
        Case("n - s", b.digest, b.qx, b.qy, b.r, N - b.s),  # (r, -s) verifies too: ECDSA is malleable
    ]
    return valid + rest


# ---- the firmware ----------------------------------------------------------------------------------
def run_cases(cs: list[Case], board: str = BOARD, work_dir: Path | None = None) -> list[tuple[bool, dict]]:
    """(the firmware's verdict, instruction-class counts) of each case on the emulated board; a build in
    work_dir is reused when the source has not changed."""
    from iotsim.firmware.build import build_elf
    from iotsim.firmware.cycles import DEFAULT_CACHES
    from iotsim.firmware.qemu import run_qemu
    from iotsim.firmware.routine import export

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        elf = build_elf(export(root / "p256_verify", SOURCE, INPUT_BYTES, OUTPUT_BYTES), board, root / "build").elf
        run = run_qemu(elf, board, b"".join(c.pack() for c in cs), INPUT_BYTES, OUTPUT_BYTES, count=True,
                       caches=DEFAULT_CACHES)
    out = []
    for i, c in enumerate(cs):
        byte = run.outputs[i]
        if byte not in (0, 1):
            raise InputError(f"the firmware's verdict on case {c.name!r} is {byte}, not 0 or 1", where=str(SOURCE))
        out.append((bool(byte), dict(run.classes[i])))
    return out


def measure(board: str = BOARD, vectors: int = VECTORS, work_dir: Path | None = None,
            per_case: dict | None = None) -> SignatureCounts:
    """Build, run and count ECDSA P-256 verification on the emulated board over cases(vectors); every verdict
    checked against `cryptography`'s. per_case, if given, receives {case name: (verdict, instructions)}."""
    from iotsim.firmware.build import get_board
    from iotsim.firmware.cost import emulated_core
    from iotsim.firmware.cycles import DEFAULT_CACHES

    cs = cases(vectors)
    results = run_cases(cs, board, work_dir)
    for c, (verdict, counts) in zip(cs, results):
        want = cryptography_verdict(c)
        if verdict != want:
            raise InputError(f"the firmware calls case {c.name!r} {'valid' if verdict else 'invalid'}, "
                             f"cryptography {'valid' if want else 'invalid'}", where=str(SOURCE))
        if per_case is not None:
            per_case[c.name] = (verdict, counts["instructions"])
    valid = [counts for c, (_, counts) in zip(cs, results) if c.name.startswith("valid ")]
    if len(valid) != vectors:
        raise InputError(f"{len(valid)} of the {vectors} signatures made as valid were accepted", where=str(SOURCE))
    ordered = sorted(valid, key=lambda k: k["instructions"])
    core = get_board(board).core
    return SignatureCounts(emulated_core(core) or core, DEFAULT_CACHES, ordered[(vectors - 1) // 2],
                           ordered[0]["instructions"], ordered[-1]["instructions"], vectors)


RECORDED: dict[str, SignatureCounts] = {
    # measured 2026-12-04 on mps2-an386 (QEMU 7.2, arm-none-eabi-gcc 12.2, -O2) over cases(VECTORS) by
    # `python -m iotsim.ota.signature`; tests/test_ota_signature.py re-measures and compares
    "cortex-m4": SignatureCounts("cortex-m4", "icache=32:32,dcache=8:32", classes={
        "instructions": 5302534, "alu": 2820243, "mul": 32, "mul_long": 280773, "div": 0, "load": 571164,
        "store": 588522, "ldst_pipelined": 421834, "ldst_double": 8447, "ldst_multiple": 29710, "table_branch": 0,
        "branch_only": 581809, "fp": 0, "fp_mac": 0, "fp_div": 0, "fp_ldst": 0, "ldst_multiple_regs": 161668,
        "branch": 596083, "branch_taken": 496087, "flash_loads": 79584, "dcache_misses": 18, "icache_misses": 64517,
    }, instructions_min=5047805, instructions_max=5423344, vectors=9),
}


def main() -> int:
    per_case: dict = {}
    c = measure(per_case=per_case)
    print(json.dumps({"core": c.core, "caches": c.caches, "classes": c.classes,
                      "instructions_min": c.instructions_min, "instructions_max": c.instructions_max,
                      "vectors": c.vectors,
                      "per_case": {k: {"verdict": v, "instructions": n} for k, (v, n) in per_case.items()}},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
