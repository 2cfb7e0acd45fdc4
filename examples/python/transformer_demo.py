"""adamcore.torch as a drop-in: a small transformer trained from scratch twice, with torch's fused AdamW and with
adamcore.torch.AdamW, from the same initial weights on the same batches. Only the optimizer differs, so the two
loss curves should lie on each other; the step times show what the optimizer step costs in each.

The data is generated (no download): sequences of a fixed random Markov chain over a small vocabulary, so the
model has a real distribution to learn (its entropy is the best loss there is, printed beside the losses).

    make demo-torch                                   # or:
    PYTHONPATH=build/python python3 examples/python/transformer_demo.py --steps 300 --out build/demo-torch
"""
import argparse
import math
import os
import time

import numpy as np
import torch
from torch import nn

import adamcore.torch as adamcore_torch


class TinyTransformer(nn.Module):
    """A decoder-only transformer: token and position embeddings, causal self-attention blocks, a linear head."""

    def __init__(self, vocab, length, width, layers, heads):
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(length, width))
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, tokens):
        x = self.token(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.blocks(x, mask=self.mask[: tokens.shape[1], : tokens.shape[1]], is_causal=True))


def markov_chain(vocab, seed):
    """A random transition matrix with a few likely successors per token, and its entropy rate (nats/token)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((vocab, vocab)) * 2.5
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    stationary = np.linalg.matrix_power(p.T, 200) @ np.full(vocab, 1.0 / vocab)
    entropy = -(stationary[:, None] * p * np.log(p)).sum()
    return p, entropy


def batches(p, steps, batch, length, seed):
    """`steps` batches of sequences drawn from the chain (the same for both runs)."""
    rng = np.random.default_rng(seed)
    vocab = p.shape[0]
    cumulative = np.cumsum(p, 1)
    out = []
    for _ in range(steps):
        seq = np.empty((batch, length + 1), np.int64)
        seq[:, 0] = rng.integers(vocab, size=batch)
        for t in range(1, length + 1):
            seq[:, t] = (rng.random(batch)[:, None] > cumulative[seq[:, t - 1]]).sum(1)
        out.append(torch.from_numpy(np.minimum(seq, vocab - 1)))
    return out


def train(make_optimizer, model, data, lr, weight_decay):
    optimizer = make_optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses, step_times = [], []
    for seq in data:
        logits = model(seq[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        start = time.perf_counter()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return np.array(losses), np.array(step_times)


def plot(path, runs, entropy):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"torch.optim.AdamW(fused=True)": "-", "adamcore.torch.AdamW": "--"}
    for name, (losses, times) in runs.items():
        steps = np.arange(1, len(losses) + 1)
        a.plot(steps, losses, styles[name], label=name)
        b.plot(steps, 1e3 * times, styles[name], label=f"{name} (median {1e3 * np.median(times):.2f} ms)")
    a.axhline(entropy, color="k", linestyle=":", label=f"the chain's entropy rate {entropy:.3f} (best possible)")
    a.set_title("training loss (cross-entropy, nats/token): the curves lie on each other")
    a.set_xlabel("step")
    a.legend()
    b.set_yscale("log")
    b.set_title("optimizer.step() time per step")
    b.set_xlabel("step")
    b.set_ylabel("ms")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle("A tiny transformer from scratch: torch's fused AdamW and adamcore.torch.AdamW, same weights, same data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description="adamcore.torch.AdamW against torch's fused AdamW on a tiny transformer")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="build/demo-torch")
    args = parser.parse_args(argv)

    p, entropy = markov_chain(args.vocab, args.seed)
    data = batches(p, args.steps, args.batch, args.length, args.seed + 1)
    torch.manual_seed(args.seed)
    first = TinyTransformer(args.vocab, args.length, args.width, args.layers, heads=4)
    initial = {k: v.clone() for k, v in first.state_dict().items()}
    parameters = sum(x.numel() for x in first.parameters())
    print(f"tiny transformer: {args.layers} layers, width {args.width}, vocab {args.vocab}, {parameters} parameters "
          f"in {len(list(first.parameters()))} tensors; {args.steps} steps of {args.batch} x {args.length} tokens; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    runs = {}
    optimizers = {"torch.optim.AdamW(fused=True)": lambda params, **kw: torch.optim.AdamW(params, fused=True, **kw),
                  "adamcore.torch.AdamW": adamcore_torch.AdamW}
    started = time.perf_counter()
    for name, make in optimizers.items():
        model = TinyTransformer(args.vocab, args.length, args.width, args.layers, heads=4)
        model.load_state_dict(initial)
        runs[name] = train(make, model, data, args.lr, args.weight_decay)
    (torch_loss, torch_time), (ours_loss, ours_time) = runs.values()
    gap = np.abs(torch_loss - ours_loss)
    print(f"\nfinal loss (mean of the last 10%): torch fused {torch_loss[-max(1, args.steps // 10):].mean():.4f}, "
          f"adamcore.torch {ours_loss[-max(1, args.steps // 10):].mean():.4f}; the chain's entropy rate "
          f"{entropy:.4f} nats/token (the best any model can do)")
    print(f"largest |loss difference| over the run: {gap.max():.2e} (step {int(gap.argmax()) + 1}); first 10 steps "
          f"{gap[:10].max():.2e}: float32 rounding in the model's own kernels grows slowly, the optimizers agree")
    print(f"optimizer.step(), median over steps: torch fused {1e3 * np.median(torch_time):.3f} ms, adamcore.torch "
          f"{1e3 * np.median(ours_time):.3f} ms ({np.median(torch_time) / np.median(ours_time):.1f}x)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "transformer_adamw.png")
    plot(path, runs, entropy)
    print(f"plot: {path}   ({time.perf_counter() - started:.1f} s of training in all)")
    if not math.isfinite(ours_loss[-1]):
        raise SystemExit("adamcore.torch's run diverged")
    return runs, entropy


if __name__ == "__main__":
    main()
