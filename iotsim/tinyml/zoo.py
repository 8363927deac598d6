"""The shipped model zoo: the int8 models in iotsim/zoo and their cards."""

from __future__ import annotations

import json

from iotsim.paths import ZOO_DIR


def zoo_cards() -> list[dict]:
    """Cards of the shipped int8 models (those with a float twin), sorted by name."""
    cards = []
    for path in sorted(ZOO_DIR.glob("*.json")):
        card = json.loads(path.read_text())
        if isinstance(card, dict) and card.get("float_model") and (ZOO_DIR / f"{path.stem}.tflite").is_file():
            cards.append(card)
    return cards
