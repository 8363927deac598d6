"""Device profiles (MCU, radio, battery, sensor, board) loaded from ``devices/``, in SI units."""

from iotsim.hardware.profiles import (
    KINDS,
    Battery,
    Board,
    Mcu,
    Radio,
    Sensor,
    SensorPart,
    Sourced,
    list_profiles,
    load_board,
    load_file,
    load_profile,
)

__all__ = [
    "KINDS",
    "Battery",
    "Board",
    "Mcu",
    "Radio",
    "Sensor",
    "SensorPart",
    "Sourced",
    "list_profiles",
    "load_board",
    "load_file",
    "load_profile",
]
