"""Build the small int8 .tflite models that exercise the firmware's elementwise/shape kernels.

Run from the repository root (needs TensorFlow; takes about a minute):

    python tests/data/firmware_ops/make_models.py

Every model has fixed seeds (weights and calibration data), so re-running gives the same ops and
shapes; the exact bytes may change with the TensorFlow version. The models are untrained:
only their arithmetic matters to the tests (firmware vs TFLite Micro, bit for bit).

- mixed_int8.tflite: conv, max pool, LOGISTIC, CONCATENATION of tensors of different scales
  (the converter inserts an int8->int8 QUANTIZE), PAD, MUL, MEAN, SOFTMAX; int8 I/O.
- residual_int8.tflite: conv1d (EXPAND_DIMS/RESHAPE around CONV_2D), residual ADD, broadcast
  ADD and MUL of (1,T,C) with (1,1,C), TANH, Flatten; int8 I/O.
- dilated_int8.tflite: dilated Conv2D ('same' and 'valid') and dilated Conv1D, which the
  converter lowers to SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND; int8 I/O.
- float_io_int8.tflite: int8 inside, float32 I/O (QUANTIZE at the input, DEQUANTIZE at the
  output), with a concat along axis 1, RESHAPE and a standalone RELU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from tensorflow import keras

HERE = Path(__file__).resolve().parent


def _convert(model: keras.Model, *, int8_io: bool, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]

    def rep():
        for _ in range(64):
            yield [rng.normal(0.0, 1.0, (1, *s)).astype(np.float32) for s in shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def mixed() -> keras.Model:
    keras.utils.set_random_seed(11)
    L = keras.layers
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    p = L.MaxPooling2D(2)(x)  # 6x6x8
    a = L.Conv2D(4, 1)(p)
    s = L.Activation("sigmoid")(a)  # LOGISTIC: fixed output scale 1/256
    b = L.Conv2D(4, 3, padding="same")(p)
    c = L.Concatenate()([s, b])  # scales differ: converter requantizes one input
    pd = L.ZeroPadding2D(((1, 0), (0, 1)))(c)  # PAD 7x7x8
    g = L.Conv2D(6, 3)(pd)  # 5x5x6
    gs = L.Activation("sigmoid")(g)
    m = L.Multiply()([g, gs])  # MUL
    gap = L.GlobalAveragePooling2D()(m)  # MEAN
    d = L.Dense(5)(gap)
    out = L.Softmax()(d)
    return keras.Model(inp, out)


def residual() -> keras.Model:
    keras.utils.set_random_seed(22)
    L = keras.layers
    inp = keras.Input((24, 4), batch_size=1)
    x = L.Conv1D(8, 3, padding="same")(inp)
    y = L.Conv1D(8, 3, padding="same", activation="relu")(x)
    r = L.Add()([x, y])  # residual ADD, same shapes
    gap = L.GlobalAveragePooling1D(keepdims=True)(r)  # (1,1,8)
    se = L.Dense(8, activation="tanh")(gap)  # TANH
    b = L.Add()([r, se])  # broadcast (1,24,8) + (1,1,8)
    b = L.Activation("relu")(b)
    m = L.Multiply()([se, b])  # broadcast (1,1,8) * (1,24,8), broadcast operand first
    f = L.Flatten()(m)
    d = L.Dense(6)(f)
    out = L.Softmax()(d)
    return keras.Model(inp, out)


def dilated() -> keras.Model:
    keras.utils.set_random_seed(33)
    L = keras.layers
    # Batch None: with a dynamic batch the converter keeps SPACE_TO_BATCH_ND -> CONV_2D ->
    # BATCH_TO_SPACE_ND (with batch 1 it folds them into a CONV_2D with dilation factors), and
    # stores the intermediate tensors with batch 1 where the real batch is 4 (2 for conv1d).
    inp = keras.Input((10, 10, 2))
    x = L.Conv2D(6, 3, dilation_rate=2, padding="same", activation="relu")(inp)  # 10x10x6
    x = L.Conv2D(4, 3, dilation_rate=2, padding="valid")(x)  # 6x6x4
    x = L.Reshape((36, 4))(x)  # SHAPE/STRIDED_SLICE/PACK -> RESHAPE (folded at export)
    x = L.Conv1D(4, 3, dilation_rate=2, padding="same", activation="relu")(x)  # 36x4
    out = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, out)


def float_io() -> keras.Model:
    keras.utils.set_random_seed(44)
    L = keras.layers
    inp = keras.Input((8, 3), batch_size=1)
    x = L.Conv1D(6, 3, padding="same", activation="relu")(inp)
    y = L.Conv1D(6, 1)(inp)
    c = L.Concatenate(axis=1)([x, y])  # (1,16,6)
    f = L.Reshape((96,))(c)
    f = L.ReLU()(f)  # a standalone RELU (nothing to fuse it into), requantizing
    d = L.Dense(4)(f)
    return keras.Model(inp, d)


MODELS = {
    "mixed_int8": (mixed, True),
    "residual_int8": (residual, True),
    "dilated_int8": (dilated, True),
    "float_io_int8": (float_io, False),
}


def main(names: list[str]) -> None:
    for i, (name, (build, int8_io)) in enumerate(MODELS.items()):
        if names and name not in names:
            continue
        keras.backend.clear_session()  # layer names (and so the file) must not depend on what ran before
        data = _convert(build(), int8_io=int8_io, seed=100 + i)
        (HERE / f"{name}.tflite").write_bytes(data)
        print(f"{name}.tflite: {len(data)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
