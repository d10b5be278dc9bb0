#!/usr/bin/env python3
#SBATCH -J train-example
#SBATCH --gpus=1
#SBATCH -t 00:10:00
"""A first job for GpuCommons: trains a tiny model on the GPUs it is given.

With PyTorch it trains a small network on the job's GPUs (CUDA_VISIBLE_DEVICES); without it, it fits the same
kind of model in plain Python, so a fresh machine runs it as is. Progress goes to standard output, notes to
standard error (`gpuc logs ID` shows both).

    gpuc submit --project demo --gpus 2 examples/train.py      # the #SBATCH lines above give the name and time
"""
import os
import random
import sys
import time

gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
job = os.environ.get("GPUC_JOB_ID") or os.environ.get("SLURM_JOB_ID") or "(not a job)"
print(f"job {job} on {os.uname().nodename}: {len(gpus)} GPU(s), CUDA_VISIBLE_DEVICES={','.join(gpus) or '(none)'}", flush=True)

steps = int(os.environ.get("TRAIN_STEPS", "20"))
try:
    import torch  # noqa: F401
except ImportError:
    torch = None

if torch is not None and torch.cuda.is_available():
    device = torch.device("cuda")
    print(f"PyTorch {torch.__version__}: training on {torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}", flush=True)
    x = torch.randn(4096, 64, device=device)
    w_true = torch.randn(64, 1, device=device)
    y = x @ w_true
    model = torch.nn.Linear(64, 1, bias=False).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        print(f"step {step:3d}/{steps}  loss {loss.item():.6f}", flush=True)
        time.sleep(0.5)
else:
    why = "PyTorch is not installed" if torch is None else "PyTorch sees no CUDA GPU"
    print(f"note: {why}; training the same model in plain Python", file=sys.stderr, flush=True)
    rng = random.Random(42)
    w_true = [rng.uniform(-1, 1) for _ in range(8)]
    data = []
    for _ in range(256):
        x = [rng.uniform(-1, 1) for _ in range(8)]
        data.append((x, sum(a * b for a, b in zip(w_true, x))))
    w = [0.0] * 8
    for step in range(1, steps + 1):
        grad = [0.0] * 8
        loss = 0.0
        for x, y in data:
            err = sum(a * b for a, b in zip(w, x)) - y
            loss += err * err
            for i in range(8):
                grad[i] += 2 * err * x[i] / len(data)
        w = [wi - 0.5 * gi for wi, gi in zip(w, grad)]
        print(f"step {step:3d}/{steps}  loss {loss / len(data):.6f}", flush=True)
        time.sleep(0.5)

print("done", flush=True)
