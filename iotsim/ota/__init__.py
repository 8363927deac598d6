"""Keeping fleets current: over-the-air model updates (delta payloads, LoRaWAN FUOTA fragmentation
with forward error correction, multicast sessions)."""
