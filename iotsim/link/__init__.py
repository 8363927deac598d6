"""Radio links between nodes and the network, behind one `Link` interface (see `base`)."""

from __future__ import annotations

from iotsim.link.base import KeepAlive, Link, LinkNodes, Messages, Transmissions
from iotsim.link.lorawan import LoRaWanLink
from iotsim.link.mesh import MeshLink
from iotsim.link.nbiot import NbIotLink
from iotsim.link.star import BleLink, WifiLink

LINKS: dict[str, type[Link]] = {"lorawan": LoRaWanLink, "ble": BleLink, "wifi": WifiLink, "ieee802154": MeshLink,
                               "nbiot": NbIotLink}


def make_link(network) -> Link:
    """The link of a scenario's `network` section (by `network.technology`)."""
    return LINKS[network.technology](network)


__all__ = ["Link", "LinkNodes", "Messages", "Transmissions", "KeepAlive", "make_link", "LINKS"]
