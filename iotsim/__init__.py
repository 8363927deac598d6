"""iotsim: discrete-event simulator of IoT sensor fleets (cloud offload vs on-device TinyML)."""

__version__ = "0.1.0"
