"""What Ray Serve would add to a query of `videoprism serve`, measured with Ray core
(`ray[serve]` does not install beside the pinned Ray): the start of a local Ray instance, and
one actor call answering a search's worth of hits, the hop from Serve's HTTP proxy to a
replica that every request takes.

    .venv/bin/python benchmarks/ray_actor_hop.py [--calls 500]
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    import ray

    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - began

    @ray.remote
    class Replica:
        def answer(self, query):
            return {"hits": [{"id": "x" * 48, "score": 0.5, "path": "/videos/" + query}] * 12}

    replica = Replica.remote()
    for _ in range(50):  # the actor started and the path warm
        ray.get(replica.answer.remote("warm"))
    ms = []
    for i in range(args.calls):
        began = time.perf_counter()
        ray.get(replica.answer.remote(f"q{i}"))
        ms.append((time.perf_counter() - began) * 1000)
    p50, p95 = np.percentile(ms, [50, 95])
    print(f"ray.init {started:.2f} s; actor call p50 {p50:.2f} ms, p95 {p95:.2f} ms "
          f"({args.calls} calls)")  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main()
