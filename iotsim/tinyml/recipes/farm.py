"""Recipe: farm_soil_int8 -- irrigation-leak detector for the farm.soil_climate workload.

Input: one window of 12 samples (1 h at 5 min) x 3 channels (soil moisture %VWC, air
temperature degC, air humidity %RH), normalized per channel. The air channels follow real
weather (NREL TMY3 year of Greensboro NC, windows at random times of the year), so the rain
confounder comes with the humidity and temperature that real rain hours had. A small MLP (the window is only
36 numbers; a static Reshape instead of Flatten so the converter emits no shape ops):

    Reshape(36) -> Dense(64, relu) -> Dense(32, relu) -> Dense(2, softmax)

about 4.5 k parameters and 4.4 k MACs.

Rebuild the zoo files:  python -m iotsim.tinyml.recipes.farm --out iotsim/zoo
"""

from __future__ import annotations

from iotsim.tinyml.recipes import window_mlp
from iotsim.tinyml.train import Recipe, main_for, train_recipe


def build_model(input_shape: tuple[int, int], n_classes: int):
    return window_mlp(input_shape, n_classes, "farm_soil")


RECIPE = Recipe(
    name="farm_soil_int8",
    float_name="farm_soil_float",
    task="Binary classification of 1-h soil/climate windows under real (TMY3) weather: irrigation leak "
    "(positive) vs normal (including rain and scheduled irrigation, which must not be flagged).",
    workload="farm.soil_climate",
    build_model=build_model,
    n_train=60000,
    n_val=10000,
    n_test=20000,
    epochs=30,
    batch_size=128,
    learning_rate=3e-3,
    seed=20240601,
    positive_fraction=0.5,
    partial_fraction=0.4,
    min_overlap=1.0 / 3.0,
    n_representative=1000,
    recipe="iotsim.tinyml.recipes.farm",
    architecture="Reshape(36) -> Dense(64, relu) -> Dense(32, relu) -> Dense(2, softmax)",
    # recorded in the card: the weather table and the part of the year the model saw
    workload_params={"weather": "tmy3_723170", "start_day_of_year": [0.0, 365.0]},
)

SMALL = RECIPE.small(n_train=8000, n_val=2000, n_test=4000, epochs=8, n_representative=300)


def build(out_dir, small: bool = False) -> dict:
    """Train, quantize and write the model files into out_dir; return the card dict."""
    return train_recipe(SMALL if small else RECIPE, out_dir)


if __name__ == "__main__":
    main_for(RECIPE, SMALL)
