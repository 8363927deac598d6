"""IEEE 802.15.4 multi-hop meshes: the PHY (timing, frame errors) and RPL-style routing by ETX."""
