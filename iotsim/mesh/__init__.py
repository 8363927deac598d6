"""IEEE 802.15.4 multi-hop meshes: the PHY (timing, frame errors), RPL-style routing by ETX, CSMA/CA to one
receiver (csma) and the whole mesh with ContikiMAC duty cycling and forwarding (network)."""
