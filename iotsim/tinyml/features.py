"""Audio features computed on the node before its model runs: MFCC, as in MLPerf Tiny keyword spotting.

`mfcc(audio)` maps 1 s of 16-kHz audio (n, 16000) to (n, 49, 10) features with the front end
of the MLPerf Tiny keyword-spotting benchmark (mlcommons/tiny,
benchmark/training/keyword_spotting/get_dataset.py and kws_util.py), step by step:

1. frames of `frame_length` = 480 samples (30 ms, kws_util.py `--window_size_ms 30`) every
   `frame_step` = 320 samples (20 ms, `--window_stride_ms 20`), no padding: 1 + (16000 - 480) //
   320 = 49 frames (tf.signal.stft with pad_end=False);
2. periodic Hann window, w[n] = 0.5 - 0.5 cos(2 pi n / N) (tf.signal.hann_window, the
   `window_fn` of get_dataset.py);
3. |FFT| of each frame zero-padded to `fft_length` = 512 (tf.signal.stft with fft_length=None
   takes the next power of two of 480), 257 bins. MLPerf Tiny takes the *magnitude*
   (`tf.abs(stfts)`), not the power: `magnitude_power=1` (2 gives the power spectrum);
4. HTK mel filterbank (mel = 1127 ln(1 + f / 700)), `n_mels` = 40 triangles, equally spaced in
   mel between `fmin_hz` = 20 and `fmax_hz` = 4000 Hz, triangles evaluated on the mel value of
   each FFT bin's frequency and the DC bin zeroed, peak weight 1 (no area normalisation):
   exactly tf.signal.linear_to_mel_weight_matrix, whose arguments get_dataset.py sets to
   "20.0, 4000.0, 40" (the defaults of TensorFlow's former contrib_audio.mfcc);
5. natural log of mel energy + `log_offset` = 1e-6 (get_dataset.py: tf.math.log(mel + 1e-6));
6. DCT-II over the mel axis, first `n_mfcc` = 10 coefficients (kws_util.py
   `--dct_coefficient_count 10`). `dct_norm="tf"` reproduces
   tf.signal.mfccs_from_log_mel_spectrograms: the unnormalised DCT-II times 1/sqrt(2 N), i.e.
   c_k = sqrt(2/N) sum_n x_n cos(pi k (2n + 1) / (2N)) for every k -- the orthonormal DCT-II
   except that c_0 is sqrt(2) times larger; `dct_norm="ortho"` gives the orthonormal DCT-II
   (c_0 = sqrt(1/N) sum_n x_n). After the per-coefficient normalisation of a model card the two
   are equivalent.

The input is in full-scale units (1.0 = digital full scale), as the audio workloads produce it.
The 40-ms window / 20-ms stride variant of ARM's "Hello Edge" DS-CNN (Zhang et al., arXiv
1711.07128, 2017; also 49 x 10) is `frame_length=640, fft_length=1024`.

Computed in float32 (as TensorFlow does) in chunks of windows so that the framed copy of the
audio stays below ~32 MB whatever the batch size.
"""

from __future__ import annotations

import functools

import numpy as np

from iotsim.errors import InputError

# tf.signal mel_ops.py: _MEL_BREAK_FREQUENCY_HERTZ = 700.0, _MEL_HIGH_FREQUENCY_Q = 1127.0 (HTK)
MEL_BREAK_HZ = 700.0
MEL_HIGH_FREQUENCY_Q = 1127.0
_CHUNK_BYTES = 32 * 1024 * 1024


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return MEL_HIGH_FREQUENCY_Q * np.log1p(np.asarray(f_hz, dtype=np.float64) / MEL_BREAK_HZ)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return MEL_BREAK_HZ * np.expm1(np.asarray(mel, dtype=np.float64) / MEL_HIGH_FREQUENCY_Q)


@functools.lru_cache(maxsize=16)
def mel_weight_matrix(n_mels: int, n_bins: int, sample_rate_hz: float, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """(n_bins, n_mels) triangular HTK mel filterbank, as tf.signal.linear_to_mel_weight_matrix.

    Bin b of an FFT of n_bins = fft_length // 2 + 1 bins lies at b / (n_bins - 1) * fs / 2; the
    DC bin gets no weight. Read-only (cached).
    """
    freqs = np.linspace(0.0, sample_rate_hz / 2.0, n_bins)[1:]
    spec_mel = hz_to_mel(freqs)[:, None]
    edges = np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slope = (spec_mel - lower) / (center - lower)
    upper_slope = (upper - spec_mel) / (upper - center)
    w = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    w = np.concatenate([np.zeros((1, n_mels)), w], axis=0)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=16)
def dct_matrix(n_in: int, n_out: int, norm: str = "tf") -> np.ndarray:
    """(n_in, n_out) DCT-II matrix: x @ D gives the first n_out coefficients (see module doc)."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in)) * np.sqrt(2.0 / n_in)
    if norm == "ortho":
        d[:, 0] *= np.sqrt(0.5)
    d.setflags(write=False)
    return d


@functools.lru_cache(maxsize=16)
def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (tf.signal.hann_window(length, periodic=True))."""
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)).astype(np.float32)
    w.setflags(write=False)
    return w


def n_frames(samples: int, frame_length: int, frame_step: int) -> int:
    """Frames of an unpadded STFT: 1 + (samples - frame_length) // frame_step (0 if too short)."""
    return 0 if samples < frame_length else 1 + (samples - frame_length) // frame_step


def log_mel(
    audio: np.ndarray,
    *,
    sample_rate_hz: float = 16000.0,
    frame_length: int = 480,
    frame_step: int = 320,
    fft_length: int = 512,
    n_mels: int = 40,
    fmin_hz: float = 20.0,
    fmax_hz: float = 4000.0,
    log_offset: float = 1e-6,
    magnitude_power: float = 1.0,
) -> np.ndarray:
    """Log mel energies (steps 1-5 of the module docstring): (n, samples) -> float32 (n, frames, n_mels)."""
    return _features(audio, sample_rate_hz, frame_length, frame_step, fft_length, n_mels, n_mels, fmin_hz, fmax_hz,
                     log_offset, magnitude_power, "tf", dct=False)


def mfcc(
    audio: np.ndarray,
    *,
    sample_rate_hz: float = 16000.0,
    frame_length: int = 480,
    frame_step: int = 320,
    fft_length: int = 512,
    n_mels: int = 40,
    n_mfcc: int = 10,
    fmin_hz: float = 20.0,
    fmax_hz: float = 4000.0,
    log_offset: float = 1e-6,
    magnitude_power: float = 1.0,
    dct_norm: str = "tf",
) -> np.ndarray:
    """MFCC features of audio windows: (n, samples) -> float32 (n, frames, n_mfcc).

    A 1-D array is one window: (samples,) -> (frames, n_mfcc). Defaults: MLPerf Tiny KWS front
    end (module docstring), 49 x 10 for 16,000 samples.
    """
    return _features(audio, sample_rate_hz, frame_length, frame_step, fft_length, n_mels, n_mfcc, fmin_hz, fmax_hz,
                     log_offset, magnitude_power, dct_norm, dct=True)


def _features(audio, sample_rate_hz, frame_length, frame_step, fft_length, n_mels, n_mfcc, fmin_hz, fmax_hz,
              log_offset, magnitude_power, dct_norm, *, dct: bool) -> np.ndarray:
    x = np.asarray(audio)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    _check(x, sample_rate_hz, frame_length, frame_step, fft_length, n_mels, n_mfcc, fmin_hz, fmax_hz,
           log_offset, magnitude_power, dct_norm)
    x = x.astype(np.float32, copy=False)
    n, samples = x.shape
    frames = n_frames(samples, frame_length, frame_step)
    n_bins = fft_length // 2 + 1
    mel_w = mel_weight_matrix(int(n_mels), n_bins, float(sample_rate_hz), float(fmin_hz), float(fmax_hz))
    mel_w = mel_w.astype(np.float32)
    dct_m = dct_matrix(int(n_mels), int(n_mfcc), dct_norm).astype(np.float32) if dct else None
    win = hann_window(int(frame_length))
    out = np.empty((n, frames, n_mfcc if dct else n_mels), dtype=np.float32)
    # bytes per window of the largest temporary (the complex spectrum, complex64)
    per_window = max(1, frames * n_bins * 8)
    chunk = max(1, _CHUNK_BYTES // per_window)
    for a in range(0, n, chunk):
        seg = x[a : a + chunk]
        fr = np.lib.stride_tricks.sliding_window_view(seg, frame_length, axis=1)[:, ::frame_step][:, :frames]
        spec = np.abs(np.fft.rfft(fr * win, n=fft_length, axis=-1))
        if magnitude_power != 1.0:
            spec = spec**magnitude_power
        logmel = np.log(spec @ mel_w + np.float32(log_offset))
        out[a : a + chunk] = logmel @ dct_m if dct else logmel
    return out[0] if single else out


def _check(x, sample_rate_hz, frame_length, frame_step, fft_length, n_mels, n_mfcc, fmin_hz, fmax_hz,
           log_offset, magnitude_power, dct_norm) -> None:
    def bad(msg: str, field: str) -> InputError:
        return InputError(msg, where="mfcc", field=field)

    if x.ndim != 2:
        raise bad(f"audio must be (n, samples) or (samples,), got shape {x.shape}", "audio")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise bad(f"audio must be numeric, got dtype {x.dtype}", "audio")
    for name, v in (("frame_length", frame_length), ("frame_step", frame_step), ("fft_length", fft_length),
                    ("n_mels", n_mels), ("n_mfcc", n_mfcc)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise bad(f"{name} must be a positive integer, got {v!r}", name)
    if fft_length < frame_length:
        raise bad(f"fft_length ({fft_length}) must be >= frame_length ({frame_length})", "fft_length")
    if n_mfcc > n_mels:
        raise bad(f"n_mfcc ({n_mfcc}) must be <= n_mels ({n_mels})", "n_mfcc")
    if not sample_rate_hz > 0:
        raise bad(f"sample_rate_hz must be > 0, got {sample_rate_hz}", "sample_rate_hz")
    if not 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2:
        raise bad(f"need 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2, got {fmin_hz}, {fmax_hz}", "fmax_hz")
    if not log_offset > 0:
        raise bad(f"log_offset must be > 0, got {log_offset}", "log_offset")
    if not magnitude_power > 0:
        raise bad(f"magnitude_power must be > 0, got {magnitude_power}", "magnitude_power")
    if dct_norm not in ("tf", "ortho"):
        raise bad(f"dct_norm must be 'tf' or 'ortho', got {dct_norm!r}", "dct_norm")
    if x.shape[1] < frame_length:
        raise bad(f"windows of {x.shape[1]} samples are shorter than one frame ({frame_length})", "audio")
