"""The keyword utterance bank: spoken words synthesised once with espeak-ng, shipped as numpy data.

The smart-home keyword workload (`iotsim.signals.keywords`) mixes utterances of a keyword and of
other words into room noise. The utterances come from this bank, built once by

    python -m iotsim.signals.keyword_bank --out iotsim/signals/data/keyword_bank.npz

which runs Debian's `espeak-ng` (formant synthesis, no recordings involved) for every entry of a
deterministic plan: the keyword "lights on" in many voices, plus non-keyword words -- some
phonetically close to the keyword ("lights off", "nights on", "likes on", ...), the rest an
everyday and smart-home vocabulary used as foreground speech and TV/babble. Every entry varies
the espeak-ng voice (a language/accent voice `-v en-us`, `en-gb-x-rp`, ... with a voice variant
`+m1`..`+m7`, `+f1`..`+f5`, `+klatt`, `+croak`, ...), the speed (`-s`, words per minute), the
pitch (`-p`, 0-99) and, for the keyword, the word gap (`-g`, units of 10 ms) and the final
punctuation (statement, exclamation, question intonation).

Processing of each utterance (numpy only):
1. espeak-ng writes a 16-bit mono WAV at 22,050 Hz (`-w file`);
2. resampled to 16 kHz with a windowed-sinc interpolator (Kaiser window, beta 8.6, 32 taps on
   each side of the output instant, cut-off 7.6 kHz, i.e. 0.95 x the output Nyquist frequency):
   22,050 -> 16,000 Hz is the rational ratio 320/441, so this is a 320-phase polyphase filter
   evaluated directly;
3. silence trimmed: 10-ms frames whose RMS is more than 30 dB below the loudest frame are cut
   from both ends, keeping 10 ms of margin, with 5-ms raised-cosine fades at the cuts;
4. peak-normalised to 1 and stored as 8-bit mu-law (continuous mu-law companding with mu = 255
   as in ITU-T G.711, sec. 3, quantised uniformly to 255 levels; not G.711's segmented table),
   which keeps about 38 dB of signal-to-quantisation-noise ratio for speech.

The bank file (`keyword_bank.npz`) holds the mu-law bytes of all utterances end to end,
compressed with LZMA (Python's `lzma`, preset 9e: 29 % smaller than the npz's own deflate on
this data) as the uint8 array `audio_xz`, and, per utterance, its start, length, kind (0 keyword, 1 confuser, 2 other word),
text, voice, speed, pitch, word gap and the espeak-ng command line; `meta` is a JSON string with
the espeak-ng version, the plan seed and the processing parameters. A copy of the metadata is
written beside it as `keyword_bank.json`. The simulator only reads the bank (`load_bank`);
espeak-ng is needed only to rebuild it.
"""

from __future__ import annotations

import argparse
import functools
import json
import lzma
import os
import shutil
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotsim.errors import InputError

DATA_DIR = Path(__file__).resolve().parent / "data"
BANK_PATH = DATA_DIR / "keyword_bank.npz"
SAMPLE_RATE_HZ = 16000
ESPEAK_RATE_HZ = 22050  # espeak-ng's output rate (WAV header of its -w output)
MU = 255.0  # ITU-T G.711 mu-law parameter

KEYWORD = "lights on"
KIND_KEYWORD, KIND_CONFUSER, KIND_OTHER = 0, 1, 2
KIND_NAMES = ("keyword", "confuser", "other")

# Phonetically close to "lights on" (espeak-ng -x: l'aIts 'O2n): same vowels or same consonant
# frame, or the same first or second word. "light on" is left out on purpose: a listener would
# take it for the command.
CONFUSERS = (
    "lights off",
    "lights",
    "light",
    "nights on",
    "likes on",
    "right on",
    "lights up",
    "flights on",
    "kites on",
    "bikes on",
    "slice on",
    "lights out",
    "lights down",
    "ice on",
    "nice one",
    "lie down",
    "on",
    "turn on",
)
# Other words: smart-home commands and everyday speech (foreground speech and TV / babble).
OTHER_WORDS = (
    "turn off",
    "switch on",
    "stop",
    "play music",
    "volume up",
    "volume down",
    "next song",
    "open the door",
    "lock the door",
    "heating on",
    "fan on",
    "good night",
    "hello",
    "thank you",
    "yes",
    "no",
    "weather",
    "set a timer",
    "kitchen",
    "bedroom",
    "coffee",
    "alarm",
    "channel",
    "dinner",
    "okay",
    "later",
    "listen",
    "tonight",
    "sunlight",
    "delighted",
    "morning",
    "today",
    "water",
    "seven",
    "news",
    "sorry",
)
KEYWORD_FORMS = ("lights on", "lights on.", "lights on!", "lights on?")

# espeak-ng 1.51 language voices for English (espeak-ng --voices=en) and voice variants
# (espeak-ng --voices=variant); a voice is "<language>+<variant>".
BASE_VOICES = (
    "en-us",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7",
    "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt4", "croak", "steph", "andy",
)  # fmt: skip

PLAN_SEED = 20240611
N_KEYWORD = 64  # keyword utterances
N_PER_CONFUSER = 3
N_PER_OTHER = 2
SPEED_WPM = (145, 215)  # espeak-ng -s (default 175 words per minute)
PITCH = (20, 80)  # espeak-ng -p (0-99, default 50)
AMPLITUDE = 80  # espeak-ng -a (0-200, default 100): headroom against clipping in the synthesiser

# processing parameters (recorded in the bank's metadata)
RESAMPLE_TAPS = 32  # input samples on each side of an output instant
RESAMPLE_BETA = 8.6  # Kaiser window parameter (about 90 dB stop-band attenuation)
RESAMPLE_CUTOFF = 0.95  # fraction of the output Nyquist frequency
TRIM_DB = 30.0
TRIM_FRAME_S = 0.010
TRIM_MARGIN_S = 0.010
FADE_S = 0.005


# ---------------------------------------------------------------------------- signal helpers
def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1] -> int8 mu-law codes (continuous mu-law, mu = 255, 255 levels)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.rint(y * 127.0).astype(np.int8)


def mulaw_decode(q: np.ndarray) -> np.ndarray:
    """int8 mu-law codes -> float32 samples in [-1, 1] (inverse of `mulaw_encode`)."""
    y = np.asarray(q, dtype=np.float64) / 127.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by a Kaiser-windowed sinc (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    n_out = int(np.floor(len(x) * rate_out / rate_in))
    if n_out <= 0:
        return np.zeros(0, dtype=np.float64)
    fc = RESAMPLE_CUTOFF * 0.5 * min(rate_in, rate_out) / rate_in  # cut-off in cycles per input sample
    pos = np.arange(n_out) * (rate_in / rate_out)  # output instants in input samples
    base = np.floor(pos).astype(np.int64)
    k = base[:, None] + np.arange(-RESAMPLE_TAPS + 1, RESAMPLE_TAPS + 1)[None, :]  # (n_out, 2*taps)
    d = pos[:, None] - k
    win = np.i0(RESAMPLE_BETA * np.sqrt(np.clip(1.0 - (d / RESAMPLE_TAPS) ** 2, 0.0, 1.0))) / np.i0(RESAMPLE_BETA)
    h = 2.0 * fc * np.sinc(2.0 * fc * d) * win
    xs = np.where((k >= 0) & (k < len(x)), x[np.clip(k, 0, len(x) - 1)], 0.0)
    return np.sum(xs * h, axis=1)


def trim_silence(x: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence (frames > TRIM_DB below the loudest), keep a margin, fade."""
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, round(TRIM_FRAME_S * rate))
    n_fr = len(x) // frame
    if n_fr == 0:
        return x
    rms = np.sqrt(np.mean(x[: n_fr * frame].reshape(n_fr, frame) ** 2, axis=1))
    if not rms.max() > 0:
        return x[:0]
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-TRIM_DB / 20))
    margin = round(TRIM_MARGIN_S * rate)
    a = max(0, loud[0] * frame - margin)
    b = min(len(x), (loud[-1] + 1) * frame + margin)
    y = x[a:b].copy()
    nf = min(round(FADE_S * rate), len(y) // 2)
    if nf > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(nf) + 0.5) / nf)
        y[:nf] *= ramp
        y[-nf:] *= ramp[::-1]
    return y


# ---------------------------------------------------------------------------- synthesis
def espeak_binary() -> str | None:
    """Path of espeak-ng, or None when it is not installed."""
    return shutil.which("espeak-ng")


def espeak_version(binary: str | None = None) -> str:
    binary = binary or espeak_binary()
    if binary is None:
        raise InputError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)", field="espeak-ng")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def espeak_command(entry: dict, wav_path: str = "OUT.wav", binary: str = "espeak-ng") -> list[str]:
    """The espeak-ng command line that synthesises one plan entry into `wav_path`."""
    return [
        binary,
        "-v", entry["voice"],
        "-s", str(entry["speed"]),
        "-p", str(entry["pitch"]),
        "-g", str(entry["gap"]),
        "-a", str(AMPLITUDE),
        "-w", wav_path,
        entry["text"],
    ]  # fmt: skip


def synthesize(entry: dict, binary: str | None = None) -> np.ndarray:
    """Run espeak-ng for one plan entry; return the processed utterance (float64, 16 kHz, peak 1)."""
    binary = binary or espeak_binary()
    if binary is None:
        raise InputError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)", field="espeak-ng")
    with tempfile.TemporaryDirectory(prefix="iotsim_espeak_") as tmp:
        wav_path = os.path.join(tmp, "utt.wav")
        res = subprocess.run(espeak_command(entry, wav_path, binary), capture_output=True, text=True, check=False)
        if res.returncode != 0 or not os.path.exists(wav_path):
            raise InputError(f"espeak-ng failed for {entry}: {res.stderr.strip()[:500]}", field="espeak-ng")
        with wave.open(wav_path, "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    if width != 2 or channels != 1:
        raise InputError(f"unexpected espeak-ng output: {channels} channels of {8 * width} bits", field="espeak-ng")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    y = trim_silence(resample(x, rate, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)
    peak = np.abs(y).max() if y.size else 0.0
    if not peak > 0:
        raise InputError(f"espeak-ng produced silence for {entry}", field="espeak-ng")
    return y / peak


def bank_plan(seed: int = PLAN_SEED) -> list[dict]:
    """The deterministic list of utterances to synthesise (text, kind, voice, speed, pitch, gap)."""
    rng = np.random.default_rng(seed)

    def entry(text: str, kind: int, variant: str) -> dict:
        return {
            "text": text,
            "kind": kind,
            "voice": f"{BASE_VOICES[rng.integers(len(BASE_VOICES))]}+{variant}",
            "speed": int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
            "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1)),
            "gap": int(rng.integers(0, 3)) if kind == KIND_KEYWORD else 0,
        }

    plan = []
    for i in range(N_KEYWORD):  # every variant about equally often
        plan.append(entry(KEYWORD_FORMS[rng.integers(len(KEYWORD_FORMS))], KIND_KEYWORD, VARIANTS[i % len(VARIANTS)]))
    for text in CONFUSERS:
        for _ in range(N_PER_CONFUSER):
            plan.append(entry(text, KIND_CONFUSER, VARIANTS[rng.integers(len(VARIANTS))]))
    for text in OTHER_WORDS:
        for _ in range(N_PER_OTHER):
            plan.append(entry(text, KIND_OTHER, VARIANTS[rng.integers(len(VARIANTS))]))
    return plan


def build_bank(
    out: str | Path = BANK_PATH,
    *,
    plan: list[dict] | None = None,
    seed: int = PLAN_SEED,
    jobs: int = 2,
    binary: str | None = None,
) -> dict:
    """Synthesise the plan with espeak-ng and write the bank (.npz) and its metadata (.json)."""
    binary = binary or espeak_binary()
    version = espeak_version(binary)
    plan = bank_plan(seed) if plan is None else list(plan)
    if not plan:
        raise InputError("empty bank plan", field="plan")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
        utts = list(pool.map(lambda e: synthesize(e, binary), plan))
    codes = [mulaw_encode(u) for u in utts]
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    meta = {
        "description": "spoken-word bank for iotsim.signals.keywords, synthesised with espeak-ng",
        "keyword": KEYWORD,
        "espeak_ng_version": version,
        "plan_seed": int(seed),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "espeak_rate_hz": ESPEAK_RATE_HZ,
        "encoding": "8-bit mu-law (continuous, mu=255, 255 levels), each utterance peak-normalised to 1; "
        "all utterances end to end, LZMA-compressed (array audio_xz)",
        "processing": {
            "resampler": "Kaiser-windowed sinc",
            "resample_taps_each_side": RESAMPLE_TAPS,
            "resample_kaiser_beta": RESAMPLE_BETA,
            "resample_cutoff_of_output_nyquist": RESAMPLE_CUTOFF,
            "trim_db_below_loudest_frame": TRIM_DB,
            "trim_frame_s": TRIM_FRAME_S,
            "trim_margin_s": TRIM_MARGIN_S,
            "fade_s": FADE_S,
            "espeak_amplitude": AMPLITUDE,
        },
        "command_template": f"espeak-ng -v VOICE -s SPEED -p PITCH -g GAP -a {AMPLITUDE} -w OUT.wav TEXT",
        "n_utterances": len(plan),
        "n_by_kind": {name: int(sum(e["kind"] == k for e in plan)) for k, name in enumerate(KIND_NAMES)},
        "total_samples": int(lengths.sum()),
    }
    arrays = {
        "audio_xz": np.frombuffer(
            lzma.compress(np.concatenate(codes).tobytes(), preset=9 | lzma.PRESET_EXTREME), dtype=np.uint8
        ),
        "start": starts,
        "length": lengths,
        "kind": np.array([e["kind"] for e in plan], dtype=np.int8),
        "text": np.array([e["text"] for e in plan]),
        "voice": np.array([e["voice"] for e in plan]),
        "speed": np.array([e["speed"] for e in plan], dtype=np.int16),
        "pitch": np.array([e["pitch"] for e in plan], dtype=np.int16),
        "gap": np.array([e["gap"] for e in plan], dtype=np.int16),
        "command": np.array([" ".join(_quote(a) for a in espeak_command(e)) for e in plan]),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    listing = {
        **meta,
        "utterances": [
            {**e, "kind": KIND_NAMES[e["kind"]], "samples": int(n), "command": c}
            for e, n, c in zip(plan, lengths, arrays["command"].tolist())
        ],
    }
    out.with_suffix(".json").write_text(json.dumps(listing, indent=1) + "\n")
    # (the build time is reported, not stored: rebuilding gives byte-identical files)
    return {**meta, "path": str(out), "bytes": out.stat().st_size, "build_time_s": round(time.perf_counter() - t0, 2)}


def _quote(arg: str) -> str:
    return f"'{arg}'" if (" " in arg or not arg) else arg


# ---------------------------------------------------------------------------- loading (numpy only)
@dataclass(frozen=True)
class KeywordBank:
    """Decoded utterances, end to end in one float32 array for vectorised gathers.

    `audio` starts with two zero samples and utterance i occupies
    audio[start[i] : start[i] + length[i]] (start already includes the offset), so index 0 (and 1)
    can stand for "no sound" in gathers and linear interpolation.
    """

    audio: np.ndarray  # float32, peak-normalised utterances
    start: np.ndarray  # int64
    length: np.ndarray  # int64
    kind: np.ndarray  # int8: 0 keyword, 1 confuser, 2 other
    text: tuple[str, ...]
    voice: tuple[str, ...]
    rms: np.ndarray  # float64, RMS of each utterance over its samples
    sample_rate_hz: int
    meta: dict

    @property
    def n(self) -> int:
        return len(self.length)

    def indices(self, *kinds: int) -> np.ndarray:
        return np.flatnonzero(np.isin(self.kind, kinds))

    def utterance(self, i: int) -> np.ndarray:
        return self.audio[self.start[i] : self.start[i] + self.length[i]]


@functools.lru_cache(maxsize=4)
def load_bank(path: str | Path | None = None) -> KeywordBank:
    """Read the shipped bank (or another bank file); cached per path."""
    p = Path(path) if path is not None else BANK_PATH
    if not p.is_file():
        raise InputError(
            "keyword bank not found; rebuild it with `python -m iotsim.signals.keyword_bank` (needs espeak-ng)",
            where=str(p),
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            codes = np.frombuffer(lzma.decompress(z["audio_xz"].tobytes()), dtype=np.int8)
            start = z["start"].astype(np.int64)
            length = z["length"].astype(np.int64)
            kind = z["kind"].astype(np.int8)
            text = tuple(str(t) for t in z["text"])
            voice = tuple(str(v) for v in z["voice"])
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, lzma.LZMAError) as exc:
        raise InputError(f"cannot read the keyword bank: {exc}", where=str(p)) from None
    if not (len(start) == len(length) == len(kind) == len(text) == len(voice)) or (start + length > len(codes)).any():
        raise InputError("inconsistent keyword bank arrays", where=str(p))
    audio = np.concatenate([np.zeros(2, np.float32), mulaw_decode(codes)])
    rms = np.array([np.sqrt(np.mean(audio[s + 2 : s + 2 + n].astype(np.float64) ** 2)) for s, n in zip(start, length)])
    return KeywordBank(
        audio=audio,
        start=start + 2,
        length=length,
        kind=kind,
        text=text,
        voice=voice,
        rms=rms,
        sample_rate_hz=int(meta.get("sample_rate_hz", SAMPLE_RATE_HZ)),
        meta=meta,
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m iotsim.signals.keyword_bank", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(BANK_PATH), help=f"bank file (default {BANK_PATH})")
    ap.add_argument("--seed", type=int, default=PLAN_SEED, help="seed of the synthesis plan")
    ap.add_argument("--jobs", type=int, default=2, help="espeak-ng processes in parallel")
    args = ap.parse_args(argv)
    summary = build_bank(args.out, seed=args.seed, jobs=args.jobs)
    print(json.dumps({k: summary[k] for k in ("path", "bytes", "n_utterances", "n_by_kind", "total_samples",
                                              "espeak_ng_version", "build_time_s")}, indent=2))
    return summary


if __name__ == "__main__":
    main()
