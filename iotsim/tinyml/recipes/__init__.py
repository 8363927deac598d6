"""Training recipes of the zoo models, by model name (each module defines RECIPE, SMALL and build)."""

from __future__ import annotations

import importlib

from iotsim.errors import InputError

# int8 model name -> recipe module; short aliases name the same recipes
RECIPE_MODULES = {
    "farm_soil_int8": "iotsim.tinyml.recipes.farm",
    "factory_bearing_int8": "iotsim.tinyml.recipes.factory",
    "wearable_ecg_int8": "iotsim.tinyml.recipes.wearable",
    "smart_home_kws_int8": "iotsim.tinyml.recipes.smart_home",
    "smart_city_traffic_int8": "iotsim.tinyml.recipes.smart_city",
}
ALIASES = {"farm": "farm_soil_int8", "factory": "factory_bearing_int8", "wearable": "wearable_ecg_int8",
           "smart_home": "smart_home_kws_int8", "kws": "smart_home_kws_int8", "ecg": "wearable_ecg_int8",
           "smart_city": "smart_city_traffic_int8", "traffic": "smart_city_traffic_int8"}


def window_mlp(input_shape: tuple[int, int], n_classes: int, name: str):
    """The small classifier of short multichannel windows (farm, smart_city): the window flattened by a static
    Reshape (so the converter emits no shape ops) -> Dense(64, relu) -> Dense(32, relu) -> Dense(softmax)."""
    import keras
    from keras import layers

    inp = keras.Input(input_shape, name="window")
    x = layers.Reshape((input_shape[0] * input_shape[1],))(inp)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dense(32, activation="relu")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name=name)


def recipe_names() -> list[str]:
    return sorted(RECIPE_MODULES)


def build(name: str, out_dir, *, small: bool = False) -> dict:
    """Train, quantize, evaluate and write zoo model `name` into out_dir with the recipe module's own
    `build` (which may add recipe-specific evaluations to the card); returns the card."""
    recipe = get_recipe(name, small=small)
    return importlib.import_module(recipe.recipe).build(out_dir, small=small)


def get_recipe(name: str, *, small: bool = False):
    """The Recipe that builds zoo model `name` (or an alias such as 'farm'); SMALL for tests."""
    key = ALIASES.get(name, name)
    module = RECIPE_MODULES.get(key)
    if module is None:
        known = ", ".join(recipe_names() + sorted(ALIASES))
        raise InputError(f"no recipe builds {name!r}; known: {known}", field="NAME")
    mod = importlib.import_module(module)
    return mod.SMALL if small else mod.RECIPE
