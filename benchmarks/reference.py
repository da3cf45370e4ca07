"""The yardstick: a hand-written PyTorch training loop, as a careful engineer writes it.

`python -m benchmarks.reference CONFIG_JSON` trains the same net on the same data with
the same optimizer and batch size as the service's job, and prints its training
throughput (samples/s, evaluation excluded) as JSON. CONFIG_JSON may also name a
`device` (cpu, cuda), a `precision` (fp32, bf16: autocast) and `compile` (true: the
first step, which compiles, is timed apart as `compile_s`, as the service does).
"""

import json
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def net(kind: str, input_shape: list[int], classes: int) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(input_shape)), 10),
            nn.ReLU(),
            nn.Linear(10, 10),
            nn.ReLU(),
            nn.Linear(10, classes),
        )
    # The service's `cnn` preset, width 16, written out by hand.
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (input_shape[1] // 4) * (input_shape[2] // 4), classes),
    )


def main(config: dict[str, object]) -> dict[str, float]:
    torch.manual_seed(0)
    device = torch.device(str(config.get("device", "cpu")))
    data = np.load(str(config["data"]))
    x = torch.from_numpy(data["x"]).float()
    y = torch.from_numpy(data["y"]).long()
    x = (x - x.mean(dim=0)) / torch.where(x.std(dim=0) > 0, x.std(dim=0), torch.ones(()))
    x, y = x.to(device), y.to(device)
    model = net(str(config["net"]), list(x.shape[1:]), int(y.max()) + 1).to(device)
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **fused)
    forward = torch.compile(model) if config.get("compile") else model
    bf16 = config.get("precision") == "bf16"
    batch = int(config["batch_size"])  # type: ignore[call-overload]
    generator = torch.Generator().manual_seed(0)
    model.train()
    train_s, compile_s, samples = 0.0, 0.0, 0
    for _ in range(int(config["epochs"])):  # type: ignore[call-overload]
        started = time.perf_counter()
        order = torch.randperm(len(y), generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for i in range(0, len(y), batch):
            first = config.get("compile") and i == 0 and samples == 0
            if first:
                step_started = time.perf_counter()
            index = order[i : i + batch]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(forward(x[index]), y[index])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            if first:
                loss_sum.item()
                compile_s = time.perf_counter() - step_started
        loss_sum.item()
        train_s += time.perf_counter() - started
        samples += len(y)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    return {
        "samples_per_s": samples / (train_s - compile_s),
        "compile_s": compile_s,
        "peak_memory_mb": peak_mb,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
