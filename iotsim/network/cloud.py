"""The cloud inference service: `servers` identical servers behind one FIFO queue.

The model is SimPy's (`simulate_cloud(..., engine="simpy")`): each server is a process that, when free,
takes the oldest waiting request, waits for it to arrive if it has not yet, and serves it for
`service_time_s`. Servers claim requests in the order they become free, which is exactly
first-come-first-served on a c-server queue (the behaviour of `simpy.Resource(capacity=c)`), but costs
one event per request instead of four or five; a test checks the two against each other. Runs use its
recurrence (`CloudQueue`: the server free first takes the next request, with the SimPy processes'
float operations, in C where it builds), which gives the same bytes at a fraction of the cost; runs in
time chunks feed it request by request across chunks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import simpy

from iotsim.network import native


@dataclass
class CloudRun:
    start_s: np.ndarray  # when each request entered service
    done_s: np.ndarray  # when its inference finished
    events: int  # requests served: one SimPy event each


def simulate_cloud(arrival_s: np.ndarray, service_time_s: float, servers: int, engine: str = "auto") -> CloudRun:
    """Serve requests arriving at `arrival_s` (any order; ties in input order) FIFO on `servers` servers.
    engine "auto": `CloudQueue`'s recurrence (the same bytes); "simpy": the SimPy processes."""
    if engine not in ("auto", "simpy"):
        raise ValueError(f"engine must be 'auto' or 'simpy', got {engine!r}")
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    n = arrival_s.shape[0]
    order = np.argsort(arrival_s, kind="stable")
    if engine == "auto":
        start_arr = np.empty(n)
        done_arr = np.empty(n)
        start_arr[order], done_arr[order] = CloudQueue(service_time_s, servers).serve(arrival_s[order])
        return CloudRun(start_arr, done_arr, n)
    arrivals = arrival_s[order].tolist()
    start = [0.0] * n
    done = [0.0] * n
    env = simpy.Environment()
    next_request = [0]
    counter = [0]

    def server(env: simpy.Environment):
        while True:
            k = next_request[0]
            if k >= n:
                return
            next_request[0] = k + 1
            begin = arrivals[k] if arrivals[k] > env.now else env.now
            start[k] = begin
            yield env.timeout(begin - env.now + service_time_s)
            done[k] = env.now
            counter[0] += 1

    for _ in range(min(servers, n)):
        env.process(server(env))
    env.run()
    start_arr = np.empty(n)
    done_arr = np.empty(n)
    start_arr[order] = start
    done_arr[order] = done
    return CloudRun(start_arr, done_arr, counter[0])


class CloudQueue:
    """`servers` servers behind one FIFO queue, fed requests in arrival order over successive calls, with the
    float operations of `simulate_cloud`'s SimPy servers (a server free at `now` serves a request arriving at
    `a` from max(a, now) and is free again at now + ((max(a, now) - now) + service)); the server free first takes
    the next request (ties: the one free first, as SimPy orders its events). A C loop (iotsim.network.native)
    where it builds, else the same loop in Python."""

    NATIVE_MAX_SERVERS = 64  # the C loop scans the servers for the first free

    def __init__(self, service_time_s: float, servers: int):
        self.service = float(service_time_s)
        self.free = np.zeros(servers)
        self.seq = np.arange(servers, dtype=np.int64)
        self.next_seq = np.array([servers], dtype=np.int64)

    def serve(self, arrival_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, done) of requests arriving at `arrival_s` (sorted), after every request served before."""
        if self.free.size <= self.NATIVE_MAX_SERVERS:
            out = native.cloud_fifo(arrival_s, self.service, self.free, self.seq, self.next_seq)
            if out is not None:
                return out
        start = np.empty(arrival_s.size)
        done = np.empty(arrival_s.size)
        heap = list(zip(self.free.tolist(), self.seq.tolist(), range(self.free.size)))
        heapq.heapify(heap)
        service, seq = self.service, int(self.next_seq[0])
        for k, a in enumerate(np.asarray(arrival_s, dtype=np.float64).tolist()):
            now, _, s = heapq.heappop(heap)
            begin = a if a > now else now
            d = now + (begin - now + service)
            start[k], done[k] = begin, d
            heapq.heappush(heap, (d, seq, s))
            seq += 1
        for now, q, s in heap:
            self.free[s], self.seq[s] = now, q
        self.next_seq[0] = seq
        return start, done


def simulate_cloud_with_resource(arrival_s: np.ndarray, service_time_s: float, servers: int) -> CloudRun:
    """Textbook version with `simpy.Resource` (one process per request); used to check the fast one."""
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    n = arrival_s.shape[0]
    start = np.empty(n)
    done = np.empty(n)
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=servers)

    def request(env: simpy.Environment, k: int):
        yield env.timeout(arrival_s[k])
        with resource.request() as req:
            yield req
            start[k] = env.now
            yield env.timeout(service_time_s)
            done[k] = env.now

    for k in np.argsort(arrival_s, kind="stable"):
        env.process(request(env, int(k)))
    env.run()
    return CloudRun(start, done, n)
