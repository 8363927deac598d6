"""Input vectors for firmware verification: random, or real data of the kind the model expects.

random  integers uniform over the input dtype's range (floats: N(0, 1)), from a seed.
real    - zoo models: windows of the model card's workload through the model's own
          pre-processing (iotsim.tinyml.compare.zoo_inputs);
        - other models, recognised by their input shape:
          (49, 10, 1) speech MFCCs (MLPerf Tiny KWS): "lights on" and background audio of the
              smart_home.keyword workload through the MLPerf front end (iotsim.tinyml.features.mfcc);
          (H, W, 3) RGB images (VWW 96x96, CIFAR-10 ResNet 32x32): random crops, at random
              scales, of the photograph of Grace Hopper that matplotlib ships
              (mpl-data/sample_data/grace_hopper.jpg), pixel p -> int8 p - 128 (the int8 range
              holds [0, 255] pixels: scale 1/255, zero point -128 for [0, 1] inputs);
          (640,) log-mel frames (MLPerf Tiny anomaly detection, ToyADMOS: 5 frames x 128 mel
              bands in dB): audio of the smart_home.keyword workload, 1024-sample frames, hop 512.
        Features are quantized with the input tensor's scale and zero point, rounded half away
        from zero and clipped to the int8 range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR
from iotsim.tinyml.stats import ModelGraph

INPUT_KINDS = ("random", "real")


def random_vectors(graph: ModelGraph, n: int, seed: int = 0) -> np.ndarray:
    from iotsim.tinyml.compare import random_inputs

    t = graph.tensors[graph.inputs[0]]
    return random_inputs(tuple(t.shape[1:]), np.dtype(t.dtype), int(n), seed=seed)


def _quantize(x: np.ndarray, graph: ModelGraph) -> np.ndarray:
    from iotsim.tinyml.runtime import round_half_away

    t = graph.tensors[graph.inputs[0]]
    if t.dtype == "float32":
        return x.astype(np.float32)
    scale = t.quantization.scales[0]
    zp = t.quantization.zero_points[0]
    info = np.iinfo(np.dtype(t.dtype))
    q = round_half_away(x / scale) + zp
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _keyword_audio(n: int, seed: int) -> np.ndarray:
    from iotsim.signals import get_workload
    from iotsim.tinyml.train import make_dataset

    windows, _, _ = make_dataset(get_workload("smart_home.keyword"), n, np.random.default_rng(seed))
    return windows[..., 0]


def _photo_crops(n: int, height: int, width: int, seed: int) -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = Image.open(path).convert("RGB")
    rng = np.random.default_rng(seed)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        side = int(rng.integers(min(img.size) // 4, min(img.size) + 1))
        x0 = int(rng.integers(0, img.size[0] - side + 1))
        y0 = int(rng.integers(0, img.size[1] - side + 1))
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((width, height), Image.BILINEAR)
        out[i] = np.asarray(crop)
    return out


def real_vectors(model_path: Path, graph: ModelGraph, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(n input tensors, description of where they come from); InputError if no real data fits."""
    from iotsim.tinyml import features

    model_path = Path(model_path)
    if model_path.resolve().parent == ZOO_DIR.resolve():
        from iotsim.tinyml.compare import zoo_inputs

        return zoo_inputs(model_path.stem, n, seed), "windows of the model card's workload"
    t = graph.tensors[graph.inputs[0]]
    shape = tuple(t.shape[1:])
    if shape == (49, 10, 1):
        mf = features.mfcc(_keyword_audio(n, seed))
        return _quantize(mf[..., None], graph), "MFCC 49x10 of smart_home.keyword audio"
    if len(shape) == 3 and shape[2] == 3 and t.dtype == "int8":
        crops = _photo_crops(n, shape[0], shape[1], seed)
        return (crops.astype(np.int16) - 128).astype(np.int8), f"{shape[0]}x{shape[1]} crops of grace_hopper.jpg"
    if shape == (640,):
        audio = _keyword_audio(n, seed)
        mel = features.log_mel(audio, frame_length=1024, frame_step=512, fft_length=1024, n_mels=128,
                               fmin_hz=0.0, fmax_hz=8000.0, magnitude_power=2.0)
        db = 10.0 / np.log(10.0) * mel  # natural-log power -> dB
        start = np.random.default_rng(seed).integers(0, db.shape[1] - 5 + 1, size=n)
        frames = np.stack([db[i, s : s + 5].ravel() for i, s in enumerate(start)])
        return _quantize(frames, graph), "5 x 128 log-mel dB frames of smart_home.keyword audio"
    raise InputError(
        f"no real data for a model whose input is {list(t.shape)} {t.dtype} (real inputs exist for zoo models, "
        "49x10 MFCC, HxWx3 image and 640 log-mel inputs); use --inputs random",
        where=str(model_path), field="inputs",
    )


def make_vectors(model_path: Path, graph: ModelGraph, n: int, kind: str = "random", seed: int = 0) -> tuple[np.ndarray, str]:
    if int(n) < 1:
        raise InputError(f"the number of vectors must be >= 1, got {n}", field="vectors")
    if kind == "random":
        return random_vectors(graph, n, seed), "random"
    if kind == "real":
        return real_vectors(model_path, graph, n, seed)
    raise InputError(f"unknown input kind {kind!r}; expected one of {', '.join(INPUT_KINDS)}", field="inputs")
