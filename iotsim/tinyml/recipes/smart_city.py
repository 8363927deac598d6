"""Recipe: smart_city_traffic_int8 -- incident detector for the smart_city.traffic workload.

Input: one window of 30 one-minute samples (half an hour) x 2 channels (vehicles counted, their mean speed in
km/h), normalized per channel. Normal windows span the whole day (night, peaks with recurring congestion,
rain, signal platoons); incidents show a queue reaching the sensor. A small MLP (60 numbers in; a static
Reshape instead of Flatten so the converter emits no shape ops):

    Reshape(60) -> Dense(64, relu) -> Dense(32, relu) -> Dense(2, softmax)

about 6 k parameters and 6 k MACs.

Rebuild the zoo files:  python -m iotsim.tinyml.recipes.smart_city --out iotsim/zoo
"""

from __future__ import annotations

from iotsim.tinyml.recipes import window_mlp
from iotsim.tinyml.train import Recipe, main_for, train_recipe


def build_model(input_shape: tuple[int, int], n_classes: int):
    return window_mlp(input_shape, n_classes, "smart_city_traffic")


RECIPE = Recipe(
    name="smart_city_traffic_int8",
    float_name="smart_city_traffic_float",
    task="Binary classification of 30-min traffic windows (vehicles per minute, mean speed) on an urban lane: "
    "incident downstream with queue spillback (positive) vs normal traffic (including recurring peak-hour "
    "congestion, rain and empty night minutes, which must not be flagged).",
    workload="smart_city.traffic",
    build_model=build_model,
    n_train=60000,
    n_val=10000,
    n_test=20000,
    epochs=30,
    batch_size=128,
    learning_rate=3e-3,
    seed=20261205,
    positive_fraction=0.5,
    partial_fraction=0.4,
    min_overlap=1.0 / 3.0,
    n_representative=1000,
    recipe="iotsim.tinyml.recipes.smart_city",
    architecture="Reshape(60) -> Dense(64, relu) -> Dense(32, relu) -> Dense(2, softmax)",
)

SMALL = RECIPE.small(n_train=8000, n_val=2000, n_test=4000, epochs=8, n_representative=300)


def build(out_dir, small: bool = False) -> dict:
    """Train, quantize and write the model files into out_dir; return the card dict."""
    return train_recipe(SMALL if small else RECIPE, out_dir)


if __name__ == "__main__":
    main_for(RECIPE, SMALL)
