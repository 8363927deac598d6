"""The cloud inference service: `servers` identical servers behind one FIFO queue, in SimPy.

Each server is a SimPy process that, when free, takes the oldest waiting request, waits for it to
arrive if it has not yet, and serves it for `service_time_s`. Servers claim requests in the order
they become free, which is exactly first-come-first-served on a c-server queue (the behaviour of
`simpy.Resource(capacity=c)`), but costs one event per request instead of four or five; a test
checks the two against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy


@dataclass
class CloudRun:
    start_s: np.ndarray  # when each request entered service
    done_s: np.ndarray  # when its inference finished
    events: int  # SimPy events processed


def simulate_cloud(arrival_s: np.ndarray, service_time_s: float, servers: int) -> CloudRun:
    """Serve requests arriving at `arrival_s` (any order) FIFO on `servers` servers."""
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    n = arrival_s.shape[0]
    order = np.argsort(arrival_s, kind="stable")
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
