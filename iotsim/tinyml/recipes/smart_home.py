"""Recipe: smart_home_kws_int8 -- "lights on" keyword spotter for smart_home.keyword.

Input: 1 s of microphone audio (16,000 samples at 16 kHz, full-scale units) turned by the node
into 49 x 10 MFCC features with the MLPerf Tiny keyword-spotting front end (`mfcc` input
adapter, iotsim.tinyml.features: 30-ms Hann frames every 20 ms, 512-point FFT magnitude, 40
HTK mel bands 20-4000 Hz, log, DCT-II, 10 coefficients), normalised per coefficient.

A depthwise-separable CNN in the style of the MLPerf Tiny KWS reference model (DS-CNN, Zhang
et al., "Hello Edge: Keyword Spotting on Microcontrollers", arXiv 1711.07128, 2017; mlcommons/
tiny benchmark/training/keyword_spotting/keras_model.py: Conv2D(64, 10x4, stride 2) + 4 x
[DepthwiseConv2D 3x3 + Conv2D 1x1], 64 channels, 22.6 k parameters, 2.66 M MACs per
shared/reference NUMBERS.md), shrunk to 40 channels and 3 separable blocks for a binary task:

    Reshape(49, 10, 1) -> Conv2D(40, 10x4, stride 2x2) -> 3 x [DepthwiseConv2D 3x3 -> Conv2D(40, 1x1)]
    -> GlobalAveragePooling2D -> Dense(2, softmax)      (batch norm + ReLU after every conv)

8.1 k trainable parameters (7.8 k in the flatbuffer, where the converter has folded batch norm
into the convolutions), 0.94 M MACs, a 25 KB int8 flatbuffer. Batch-norm momentum 0.9 (Keras default 0.99) so the moving statistics settle
within the first epoch of the short (and the reduced, test-time) training.

Rebuild the zoo files:  python -m iotsim.tinyml.recipes.smart_home --out iotsim/zoo
"""

from __future__ import annotations

from iotsim.tinyml.train import Recipe, main_for, train_recipe

CHANNELS = 40
BLOCKS = 3

# The node's feature extractor, written out in full in the model card (iotsim.tinyml.features
# documents every value; MLPerf Tiny KWS front end).
MFCC_PARAMS = {
    "sample_rate_hz": 16000.0,
    "frame_length": 480,
    "frame_step": 320,
    "fft_length": 512,
    "n_mels": 40,
    "n_mfcc": 10,
    "fmin_hz": 20.0,
    "fmax_hz": 4000.0,
    "log_offset": 1e-6,
    "magnitude_power": 1.0,
    "dct_norm": "tf",
}


def build_model(input_shape: tuple[int, int], n_classes: int):
    import keras
    from keras import layers

    def bn_relu(x):
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inp = keras.Input(input_shape, name="mfcc")
    x = layers.Reshape((*input_shape, 1))(inp)
    x = bn_relu(layers.Conv2D(CHANNELS, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x))
    for _ in range(BLOCKS):
        x = bn_relu(layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x))
        x = bn_relu(layers.Conv2D(CHANNELS, 1, use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="smart_home_kws")


RECIPE = Recipe(
    name="smart_home_kws_int8",
    float_name="smart_home_kws_float",
    task="Binary keyword spotting on 1-s microphone windows: the command 'lights on' (positive, "
    "possibly cut at the window edge) vs background (room noise, hum, TV babble, other words "
    "including phonetically close ones such as 'lights off' or 'nights on', silence).",
    workload="smart_home.keyword",
    build_model=build_model,
    n_train=16000,
    n_val=3000,
    n_test=4000,
    epochs=12,
    batch_size=128,
    learning_rate=3e-3,
    seed=20240612,
    positive_fraction=0.5,
    partial_fraction=0.4,
    min_overlap=0.25,
    n_representative=500,
    recipe="iotsim.tinyml.recipes.smart_home",
    architecture=f"MFCC 49x10 -> Reshape(49,10,1) -> Conv2D({CHANNELS},10x4,s2x2) -> "
    f"{BLOCKS} x [DepthwiseConv2D(3x3) -> Conv2D({CHANNELS},1x1)] -> GlobalAveragePooling2D -> "
    "Dense(2, softmax); batch norm (folded) + ReLU after each conv, 'same' padding (DS-CNN, MLPerf Tiny KWS style)",
    input_adapter={"name": "mfcc", "params": MFCC_PARAMS},
    notes="Speech is synthetic (espeak-ng voices, iotsim/signals/data/keyword_bank.npz) and the same "
    "utterance bank feeds the training and the test windows (with fresh noise, levels, reverberation, "
    "speed perturbation and placement); accuracy on real recorded speech would be lower.",
)

SMALL = RECIPE.small(n_train=3000, n_val=600, n_test=1000, epochs=4, n_representative=200)


def build(out_dir, small: bool = False) -> dict:
    """Train, quantize and write the model files into out_dir; return the card dict."""
    return train_recipe(SMALL if small else RECIPE, out_dir)


if __name__ == "__main__":
    main_for(RECIPE, SMALL)
