"""Routes of an IEEE 802.15.4 mesh: a destination-oriented tree to the border routers, by expected transmissions.

Link metric: ETX (D. De Couto, D. Aguayo, J. Bicket and R. Morris, "A high-throughput path metric for
multi-hop wireless routing", MobiCom 2003): the expected number of transmissions for a frame to get
through and be acknowledged, 1 / (d_f d_r), with d_f the chance the data frame arrives and d_r the
chance its acknowledgement comes back (`iotsim.mesh.phy`: 802.15.4 frame success at each direction's
received power).

Tree: RPL with the Minimum Rank with Hysteresis Objective Function (RFC 6550; RFC 6719, MRHOF): a
node's path cost is the sum of its links' ETX to a border router (a DODAG root), and it takes as
preferred parent the neighbour through which that cost is least, so the tree is the shortest-path
tree of the ETX-weighted graph, from the roots (one Dijkstra from all of them: networkx's
multi_source_dijkstra). MRHOF's limits apply: no link whose ETX exceeds MAX_LINK_ETX (RFC 6719
section 5, MAX_LINK_METRIC 512 = ETX 4 in its units of 1/128) and no path costlier than
MAX_PATH_ETX (MAX_PATH_COST 32768 = 256). The hysteresis (a parent is only replaced by one at least
PARENT_SWITCH_THRESHOLD better) matters for metrics measured over time; the ETX here follows from
static link budgets, so the tree is recomputed whole when the graph changes (a relay dies).

A node with no route is orphaned; `repair` recomputes the tree without the dead nodes and names the
orphans (the subtree that lost its path and has no other).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from iotsim.mesh import phy

MAX_LINK_ETX = 512 / 128  # RFC 6719 section 5: MAX_LINK_METRIC 512 for ETX in units of 1/128
MAX_PATH_ETX = 32768 / 128  # RFC 6719 section 5: MAX_PATH_COST
ROOT = -1  # parent of a border router
ORPHAN = -2  # parent of a node without a route


def link_etx(rx_power_dbm: np.ndarray, data_octets: int,
             sensitivity_dbm: float = phy.STANDARD_SENSITIVITY_DBM, fading: bool = False) -> np.ndarray:
    """ETX of every directed link i -> j: 1 / (P(data i -> j arrives) P(ack j -> i arrives)); inf where either
    is 0. `rx_power_dbm[i, j]`: mean power node j receives from node i (diagonal ignored). `fading`: the
    probabilities averaged over Rayleigh fading (`phy.faded_link_success`), as a link that fades per frame
    delivers on average."""
    p = np.asarray(rx_power_dbm, dtype=np.float64)
    success = phy.faded_link_success if fading else phy.link_success
    data = success(p, data_octets, sensitivity_dbm)
    ack = success(p.T, phy.ACK_PSDU_OCTETS, sensitivity_dbm)
    with np.errstate(divide="ignore", over="ignore"):
        etx = 1.0 / (data * ack)
    np.fill_diagonal(etx, np.inf)
    return etx


def link_graph(etx: np.ndarray, max_link_etx: float = MAX_LINK_ETX) -> nx.DiGraph:
    """The usable links (ETX at most `max_link_etx`) as a directed graph, weight = ETX."""
    n = etx.shape[0]
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    src, dst = np.nonzero(etx <= max_link_etx)
    g.add_weighted_edges_from(zip(src.tolist(), dst.tolist(), etx[src, dst].tolist()))
    return g


@dataclass
class Dodag:
    """The routing tree: per node, its preferred parent (ROOT for a border router, ORPHAN without a route), its
    path ETX to its root, its hop count and which root it reaches."""

    parent: np.ndarray
    cost: np.ndarray
    hops: np.ndarray
    root: np.ndarray

    @property
    def orphans(self) -> np.ndarray:
        return np.flatnonzero(self.parent == ORPHAN)

    def descendants(self) -> np.ndarray:
        """Per node: how many nodes route through it (its subtree without itself): what it forwards."""
        n = self.parent.size
        count = np.zeros(n, dtype=np.int64)
        for i in np.argsort(-self.hops, kind="stable"):  # deepest first: a node's subtree is done before it
            p = self.parent[i]
            if p >= 0:
                count[p] += count[i] + 1
        return count

    def path(self, node: int) -> list[int]:
        """The nodes from `node` to its root (empty for an orphan)."""
        if self.parent[node] == ORPHAN:
            return []
        out = [int(node)]
        while self.parent[out[-1]] >= 0:
            out.append(int(self.parent[out[-1]]))
        return out


def dodag(graph: nx.DiGraph, roots, alive: np.ndarray | None = None, max_path_etx: float = MAX_PATH_ETX) -> Dodag:
    """The shortest-ETX-path tree from every node to its nearest root (MRHOF). Dead nodes (alive False) neither
    route nor forward; a node whose least cost exceeds `max_path_etx` is an orphan."""
    n = graph.number_of_nodes()
    alive = np.ones(n, dtype=bool) if alive is None else np.asarray(alive, dtype=bool)
    live_roots = [int(r) for r in roots if alive[r]]
    g = graph.subgraph(np.flatnonzero(alive).tolist()).reverse(copy=False)  # edges toward the roots, reversed
    cost, paths = nx.multi_source_dijkstra(g, live_roots, weight="weight") if live_roots else ({}, {})
    parent = np.full(n, ORPHAN, dtype=np.int64)
    out_cost = np.full(n, np.inf)
    hops = np.full(n, -1, dtype=np.int64)
    root = np.full(n, -1, dtype=np.int64)
    for node, c in cost.items():
        if c > max_path_etx:
            continue
        p = paths[node]  # root, ..., node
        parent[node] = ROOT if len(p) == 1 else p[-2]
        out_cost[node] = c
        hops[node] = len(p) - 1
        root[node] = p[0]
    return Dodag(parent, out_cost, hops, root)


def repair(graph: nx.DiGraph, roots, dead: np.ndarray) -> Dodag:
    """The tree again without the `dead` nodes (a bool mask or indices): the orphans are those left without
    any route."""
    n = graph.number_of_nodes()
    alive = np.ones(n, dtype=bool)
    alive[np.asarray(dead)] = False
    return dodag(graph, roots, alive)


__all__ = ["Dodag", "MAX_LINK_ETX", "MAX_PATH_ETX", "ORPHAN", "ROOT", "dodag", "link_etx", "link_graph", "repair"]
