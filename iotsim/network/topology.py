"""The network's infrastructure as a networkx graph: gateways -> backhaul -> network server -> cloud.

Node-to-gateway radio links are not edges here (a fleet can have 10^5 nodes); they live in numpy
arrays in the engine. Each edge carries `latency_s` and `bandwidth_bps`; the delay of a message of
B bytes along a path is the sum over its edges of latency + 8 B / bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

NETWORK_SERVER = "network_server"
CLOUD = "cloud"


def build_topology(network) -> nx.DiGraph:
    """Graph of the scenario's infrastructure (`network` is a scenario `Network`)."""
    graph = nx.DiGraph()
    graph.add_node(NETWORK_SERVER, kind="network_server")
    graph.add_node(CLOUD, kind="cloud", servers=network.cloud.servers,
                   inference_time_s=network.cloud.inference_time)
    # network server and application/cloud are co-located: no delay between them
    graph.add_edge(NETWORK_SERVER, CLOUD, latency_s=0.0, bandwidth_bps=np.inf)
    for gw in network.gateways:
        backhaul = gw.backhaul or network.backhaul
        graph.add_node(gw.id, kind="gateway", position_m=tuple(gw.position_m))
        graph.add_edge(gw.id, NETWORK_SERVER, latency_s=backhaul.latency, bandwidth_bps=backhaul.bandwidth_bps)
    return graph


@dataclass(frozen=True)
class PathDelay:
    latency_s: float
    seconds_per_byte: float

    def delay_s(self, n_bytes):
        return self.latency_s + np.asarray(n_bytes, dtype=np.float64) * self.seconds_per_byte


def path_to_cloud(graph: nx.DiGraph, gateway_id: str) -> PathDelay:
    """Fastest path (by latency) from a gateway to the cloud, as latency plus a per-byte cost."""
    path = nx.shortest_path(graph, gateway_id, CLOUD, weight="latency_s")
    latency = 0.0
    per_byte = 0.0
    for a, b in zip(path, path[1:]):
        edge = graph.edges[a, b]
        latency += edge["latency_s"]
        per_byte += 8.0 / edge["bandwidth_bps"]
    return PathDelay(latency, per_byte)


def gateway_latencies_s(network) -> list[float]:
    """One-way backhaul latency from each gateway (in the scenario's order) to the network server."""
    graph = build_topology(network)
    return [float(nx.shortest_path_length(graph, gw.id, NETWORK_SERVER, weight="latency_s"))
            for gw in network.gateways]
