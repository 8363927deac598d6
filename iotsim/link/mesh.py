"""A multi-hop IEEE 802.15.4 mesh as a `Link` (`network.technology: ieee802154`).

The gateways are the mesh's border routers (mains powered, always listening); every node routes its
frames to one of them over a tree of least expected transmissions (RPL's MRHOF, `iotsim.mesh.routing`),
and the whole mesh runs as one event simulation (`iotsim.mesh.network`): queues, unslotted CSMA/CA,
ContikiMAC duty cycling, forwarding, SINR reception.

- Links between nodes: the scenario's path-loss model (never below free space at 2.44 GHz) and a
  log-normal shadowing drawn once per pair of nodes (symmetric), from its own stream of the scenario's
  seed, so every policy sees the same mesh; links to the gateways are the run's own link budgets.
- The tree is computed once per run from those budgets (links too weak to wake a duty-cycled node left
  out); when a node dies during the run, the tree is recomputed without it and its orphans lose frames
  (`no_route`) until a route appears again (the engine re-runs the link with the nodes' death times).
- Messages are split into 802.15.4 frames of at most 127 octets: `frame_overhead_bytes` of MAC and 6LoWPAN
  headers, and a 6LoWPAN fragment header (RFC 4944 5.3: 4 octets for the first fragment, 5 for the others;
  5 charged to every fragment) when a message needs more than one frame. Fragments travel independently.
- What a frame costs its origin (its first hop: CSMA/CA, the strobe of copies, the wait for the ACK) is
  charged to that frame; what a node spends on others (receiving, forwarding, acknowledging) and on idle
  listening (channel checks, overhearing) is its steady load over the time it was alive (`Transmissions.steady`).
"""

from __future__ import annotations

import numpy as np

from iotsim.errors import InputError
from iotsim.link.base import KeepAlive, Link, LinkNodes, Messages, Transmissions, frames_from_split
from iotsim.mesh import network as mesh
from iotsim.mesh import phy, routing
from iotsim.mesh.csma import MacSettings
from iotsim.network.fate import Fate
from iotsim.radio import fragmentation, propagation

FRAGMENT_HEADER_BYTES = 5  # RFC 4944 5.3: FRAG1 4 octets, FRAGN 5 (the larger charged to every fragment)
STREAM_MESH = 9  # the scenario seed's stream for links between nodes (shadowing) and ContikiMAC phases
MAX_MESH_NODES = 4000  # nodes + border routers: the node-to-node link budgets are a dense matrix

_FATE_OF_HOP = np.zeros(max(int(h) for h in mesh.Hop) + 1, dtype=np.int8)
for _hop, _fate in ((mesh.Hop.DELIVERED, Fate.DELIVERED), (mesh.Hop.CHANNEL_ACCESS, Fate.CHANNEL_ACCESS),
                    (mesh.Hop.NO_ACK, Fate.LINK_RETRIES), (mesh.Hop.QUEUE_FULL, Fate.QUEUE_FULL),
                    (mesh.Hop.NO_ROUTE, Fate.NO_ROUTE), (mesh.Hop.PENDING, Fate.PENDING),
                    (mesh.Hop.NODE_DEAD, Fate.RELAY_DEAD)):
    _FATE_OF_HOP[_hop] = _fate


class MeshLink(Link):
    technology = "ieee802154"
    radio_technology = "ieee802154"
    carrier_frequency_hz = 2.44e9  # channels 11-26 span 2405-2480 MHz (IEEE 802.15.4-2006 6.1.2.1)
    closed_loop = True  # a relay's death changes everyone's routes

    def __init__(self, network):
        self.network = network
        self.topology: dict | None = None

    @property
    def settings(self):
        return self.network.ieee802154

    @property
    def tx_power_dbm(self) -> float:
        return float(self.settings.tx_power_dbm)

    def mesh_settings(self) -> mesh.MeshSettings:
        s = self.settings
        rdc = (mesh.ContikiMac(channel_check_rate_hz=s.channel_check_rate_hz, phase_lock=s.phase_lock)
               if s.duty_cycling == "contikimac" else None)
        return mesh.MeshSettings(
            mac=MacSettings(min_be=s.min_be, max_be=s.max_be, max_csma_backoffs=s.max_csma_backoffs,
                            max_frame_retries=s.max_frame_retries, ifs=s.interframe_spacing),
            rdc=rdc, queue_frames=s.queue_frames, sensitivity_dbm=s.sensitivity_dbm,
            cca_threshold_dbm=s.cca_threshold_dbm, fading=s.fading == "rayleigh")

    def max_payload_bytes(self) -> int:
        return phy.MAX_PSDU_OCTETS - self.settings.frame_overhead_bytes

    # ---- the fleet's mesh, once per run --------------------------------------------------------------
    def attach(self, nodes: LinkNodes, seed: int) -> None:
        if nodes.positions_m is None:
            raise InputError("a mesh needs the nodes' positions", field="network.technology")
        n, gw = nodes.n, len(self.network.gateways)
        m = n + gw
        if m > MAX_MESH_NODES:
            raise InputError(f"a mesh of {n:,} nodes and {gw} border routers is more than this version simulates "
                             f"({MAX_MESH_NODES:,} in all: its node-to-node link budgets are a dense matrix)",
                             field="fleet")
        xy = np.vstack([nodes.positions_m, [g.position_m for g in self.network.gateways]]).astype(np.float64)
        prop = self.network.propagation
        d = np.maximum(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]), 1.0)
        loss = np.maximum(propagation.path_loss_db(d, pl_d0_db=prop.pl_d0_db, d0_m=prop.d0_m, exponent=prop.exponent),
                          propagation.free_space_path_loss_db(d, self.carrier_frequency_hz))
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM_MESH,)))
        shadow = np.triu(rng.normal(0.0, prop.shadowing_sigma_db, size=(m, m)), 1)
        power = self.tx_power_dbm - loss + shadow + shadow.T
        # links to the border routers: the run's own budgets (the same shadowing every link of the run uses)
        power[:n, n:] = nodes.rx_power_dbm
        power[n:, :n] = nodes.rx_power_dbm.T
        np.fill_diagonal(power, 0.0)
        settings = self.mesh_settings()
        always_on = np.zeros(m, dtype=bool)
        always_on[n:] = True
        if settings.rdc is None:
            always_on[:] = True
        etx = routing.link_etx(power, phy.MAX_PSDU_OCTETS, settings.sensitivity_dbm, fading=settings.fading)
        etx[~mesh.wakes_receiver(power, settings, always_on)] = np.inf
        graph = routing.link_graph(etx)
        roots = list(range(n, m))
        tree = routing.dodag(graph, roots)
        cycle = settings.rdc.cycle_s if settings.rdc is not None else 1.0
        self.topology = {"power": power, "graph": graph, "roots": roots, "tree": tree, "settings": settings,
                         "phase": rng.uniform(0.0, cycle, m), "n": n, "positions_m": xy}

    def state(self) -> dict | None:
        """The mesh of this run: `graph` (usable links, weight ETX), `roots` (border routers: indices n ..),
        `tree` (the routing tree before any death), `positions_m` (nodes, then border routers), `n`."""
        t = self.topology
        return None if t is None else {k: t[k] for k in ("graph", "roots", "tree", "positions_m", "n")}

    # ---- a policy's traffic ------------------------------------------------------------------------------
    def transmit(self, messages: Messages, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None) -> Transmissions:
        if self.topology is None:
            self.attach(nodes, 0)
        top = self.topology
        n = top["n"]
        msg_index, fragment, payload = fragmentation.split_messages(messages.app_bytes, self.max_payload_bytes(),
                                                                    FRAGMENT_HEADER_BYTES)
        psdu = (payload + self.settings.frame_overhead_bytes).astype(np.int64)
        tx = frames_from_split(messages, msg_index, fragment, psdu, np.zeros(msg_index.shape[0], np.int64),
                               phy.frame_airtime_s(psdu))
        death = np.full(len(top["roots"]) + n, np.inf)
        if stop_s is not None:
            death[:n] = stop_s
        graph, roots = top["graph"], top["roots"]
        r = mesh.simulate_mesh(top["power"], top["tree"].parent, tx.node, tx.ready_s, psdu, duration_s, rng,
                               top["settings"], top["phase"], death_s=death,
                               reroute=lambda alive: routing.dodag(graph, roots, alive).parent)
        k = len(tx)
        first = r.hop_sender == tx.node[r.hop_frame]  # the hop each frame's origin made
        start = tx.ready_s.copy()
        start[r.hop_frame[first]] = r.hop_start_s[first]
        tx.start_s = start
        tx.attempts = np.rint(r.own_tx_s / tx.airtime_s).astype(np.int64)
        tx.tx_s, tx.rx_s, tx.standby_s = r.own_tx_s, r.own_rx_s, np.zeros(k)
        delivered = r.fate == mesh.Hop.DELIVERED
        tx.busy_s = np.where(delivered, r.delivered_s - start, 0.0)
        tx.link_fate = _FATE_OF_HOP[r.fate]
        last = r.hop_receiver >= n
        gateway = np.full(k, -1, dtype=np.int16)
        gateway[r.hop_frame[last]] = r.hop_receiver[last] - n
        tx.link_gateway = gateway
        tx.channel = np.full(k, -1, dtype=np.int8)
        tx.hops = r.hops
        alive_s = np.maximum(np.minimum(death[:n], duration_s), 1e-9)
        tx.steady = KeepAlive(period_s=alive_s, tx_s=r.tx_s[:n, 1], rx_s=r.rx_s[:n, 1] + r.rx_s[:n, 2],
                              standby_s=np.zeros(n))
        tx.node_stats = {"frames_forwarded": r.forwarded[:n], "frames_overheard": r.overheard[:n],
                         "relay_tx_s": r.tx_s[:n, 1], "relay_rx_s": r.rx_s[:n, 1], "idle_listen_s": r.rx_s[:n, 2]}
        tx.gateway_stats = {"frames_delivered": np.bincount(gateway[delivered], minlength=len(roots))}
        return tx

    def notes(self) -> list[str]:
        s = self.settings
        settings = self.mesh_settings()
        out = [
            f"IEEE 802.15.4 mesh (2.4 GHz O-QPSK, 250 kbit/s): every node routes to the border routers (the "
            f"gateways, always listening) over RPL's least-ETX tree (MRHOF, RFC 6719; ETX from each link's budget, "
            f"De Couto et al. 2003); unslotted CSMA/CA (macMinBE {s.min_be}, macMaxBE {s.max_be}, "
            f"macMaxCSMABackoffs {s.max_csma_backoffs}, macMaxFrameRetries {s.max_frame_retries}); reception by "
            f"SINR over time (hidden terminals, capture; {s.fading} fading per copy and receiver); sensitivity {s.sensitivity_dbm:g} dBm, CCA threshold "
            f"{settings.cca_dbm:g} dBm; {s.queue_frames} queued frames per node; {s.frame_overhead_bytes} bytes of "
            f"MAC and 6LoWPAN headers per frame, {FRAGMENT_HEADER_BYTES} more per fragment.",
        ]
        if settings.rdc is not None:
            rdc = settings.rdc
            out.append(
                f"ContikiMAC duty cycling: channel checks at {rdc.channel_check_rate_hz:g} Hz ({rdc.cca_count} CCAs of "
                f"{rdc.cca_check_s * 1e6:.0f} us: {rdc.idle_check_s(86400.0):.0f} s of listening a day), strobes "
                f"of repeated frames up to {rdc.strobe_s * 1e3:.1f} ms, phase lock {'on' if rdc.phase_lock else 'off'} "
                "(constants of contiki-os/contiki contikimac.c).")
        out.append(
            "Mesh simplifications: links between nodes from the path-loss model with shadowing drawn once per pair; "
            "the tree is fixed until a node dies (then recomputed); RPL control traffic (DIO, DAO) is not simulated; "
            "one channel; fragments travel independently; a relay's work is charged as a steady load over the time "
            "it lived.")
        return out


__all__ = ["MeshLink", "FRAGMENT_HEADER_BYTES", "MAX_MESH_NODES"]
