"""adamcore.torch as a one-line change in a torch training loop: the same model trained with torch.optim or adamcore.

    PYTHONPATH=build/python python3 examples/python/torch_drop_in.py --optimizer adamcore
    PYTHONPATH=build/python python3 examples/python/torch_drop_in.py --optimizer torch

A small MLP learns a noisy 2-D function (generated, no download) with AdamW, a warmup + cosine schedule and
gradient clipping, as training frameworks run it. Printed: the loss every few epochs and the time spent in
optimizer.step() (the only line that differs between the two runs).
"""
import argparse
import math
import time

import torch

import adamcore.torch


def make_optimizer(name, params, lr, fused):
    if name == "adamcore":
        return adamcore.torch.AdamW(params, lr=lr, weight_decay=0.01)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=fused)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=["adamcore", "torch"], default="adamcore")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--no-fused", action="store_true", help="torch: the default (single-tensor) step")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    x = torch.rand(4096, 2) * 4 - 2
    y = (x[:, :1] * x[:, 1:]).sin() + 0.05 * torch.randn(4096, 1)
    model = torch.nn.Sequential(torch.nn.Linear(2, args.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(args.hidden, args.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(args.hidden, 1))
    opt = make_optimizer(args.optimizer, model.parameters(), args.lr, not args.no_fused)
    batches = 32
    total = args.epochs * batches
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / total)))

    step_seconds = 0.0
    loss = torch.tensor(0.0)
    for epoch in range(1, args.epochs + 1):
        for batch in torch.randperm(len(x)).view(batches, -1):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            start = time.perf_counter()
            opt.step()
            step_seconds += time.perf_counter() - start
            schedule.step()
        if epoch % max(1, args.epochs // 5) == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}  loss {loss.item():.5f}")
    final = torch.nn.functional.mse_loss(model(x), y).item()
    print(f"{args.optimizer}: final loss {final:.5f}; optimizer.step() {1e6 * step_seconds / total:.1f} us per step "
          f"({total} steps, {sum(p.numel() for p in model.parameters())} parameters in "
          f"{len(list(model.parameters()))} tensors)")
    return final


if __name__ == "__main__":
    main()
