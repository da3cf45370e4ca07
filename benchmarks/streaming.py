"""Streaming is free: training throughput with 10 live websocket subscribers against none.

The seed job's MLP (the most overhead-bound case) runs alternately with no subscriber
(the job is only polled for its status) and with 10 following its events; the figure is
the median ratio of the jobs' own training samples/s. The subscribers are websocket
clients in this same process, beside the API, on the same cores as the trainer.
"""

import statistics
from typing import Any

from benchmarks.engine import SEED_MLP, job
from benchmarks.service import running

RUNS = 5
SUBSCRIBERS = 10
EPOCHS = 30


def run() -> dict[str, Any]:
    quiet, watched = [], []
    with running() as service:
        # Long enough (about 4 s) that following costs what it costs in steady state, not
        # the subscribers' connection set-up racing a sub-second job.
        spec = job(service.dataset_id, SEED_MLP, 32, EPOCHS)
        for _ in range(RUNS):
            quiet.append(service.run(spec, subscribers=0)["timings"]["samples_per_s"])
            watched.append(service.run(spec, subscribers=SUBSCRIBERS)["timings"]["samples_per_s"])
    return {
        "no_subscribers_samples_per_s": statistics.median(quiet),
        "subscribers_samples_per_s": statistics.median(watched),
        "subscribers": SUBSCRIBERS,
        "ratio": statistics.median(w / q for w, q in zip(watched, quiet, strict=True)),
    }
