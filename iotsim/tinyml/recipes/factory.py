"""Recipe: factory_bearing_int8 -- outer-race bearing fault detector for factory.vibration.

Input: one accelerometer burst of 256 samples at 3200 Hz x 3 axes (m/s^2), normalized per
axis. A strided 1-D CNN: the first layers act as learned band-pass filters around the
structural resonance, the later ones see 20-40 ms (one to several BPFO periods) of envelope;
global average pooling (no Flatten) and a small dense head:

    Conv1D(16, 7, stride 2) -> Conv1D(32, 5, s2) -> Conv1D(48, 5, s2) -> Conv1D(64, 3, s2)
    -> GlobalAveragePooling1D -> Dense(32) -> Dense(2, softmax)      (ReLU after each hidden layer)

about 22 k parameters and 0.6 M MACs.

Rebuild the zoo files:  python -m iotsim.tinyml.recipes.factory --out iotsim/zoo
"""

from __future__ import annotations

from iotsim.tinyml.train import Recipe, main_for, train_recipe


def build_model(input_shape: tuple[int, int], n_classes: int):
    import keras
    from keras import layers

    inp = keras.Input(input_shape, name="window")
    x = layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(inp)
    x = layers.Conv1D(32, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(48, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(32, activation="relu")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="factory_bearing")


RECIPE = Recipe(
    name="factory_bearing_int8",
    float_name="factory_bearing_float",
    task="Binary classification of 80-ms tri-axial vibration bursts: outer-race bearing fault "
    "(positive) vs normal machine (including gear mesh tones, load steps and isolated shocks).",
    workload="factory.vibration",
    build_model=build_model,
    n_train=60000,
    n_val=8000,
    n_test=10000,
    epochs=20,
    batch_size=128,
    learning_rate=3e-3,
    seed=20240602,
    positive_fraction=0.5,
    partial_fraction=0.2,
    min_overlap=0.25,
    n_representative=1000,
    recipe="iotsim.tinyml.recipes.factory",
    architecture="Conv1D(16,7,s2) -> Conv1D(32,5,s2) -> Conv1D(48,5,s2) -> Conv1D(64,3,s2) -> "
    "GlobalAveragePooling1D -> Dense(32) -> Dense(2, softmax); ReLU, 'same' padding",
)

SMALL = RECIPE.small(n_train=6000, n_val=1500, n_test=2000, epochs=5, n_representative=300)


def build(out_dir, small: bool = False) -> dict:
    """Train, quantize and write the model files into out_dir; return the card dict."""
    return train_recipe(SMALL if small else RECIPE, out_dir)


if __name__ == "__main__":
    main_for(RECIPE, SMALL)
