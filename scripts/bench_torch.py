#!/usr/bin/python3
"""The PyTorch reference timing of the same network (scripts/torch_reference.py),
for scripts/bench.sh: prints lines in the format of `spynco bench`.

Usage: /usr/bin/python3 scripts/bench_torch.py (--infer SIZE | --train SIZE)
       [--batch N] [--threads N] [--repeat N]
Needs Debian's python3-torch; exits with status 3 and a message if torch is missing.
"""
import argparse
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("PyTorch is not installed (apt-get install python3-torch); skipping the reference",
          file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import torch_reference as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--infer", type=int)
    mode.add_argument("--train", type=int)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = args.infer or args.train
    G, D = ref.Generator(), ref.Discriminator()
    a = torch.rand(args.batch, 1, size, size) * 2 - 1
    b = torch.rand(args.batch, 3, size, size) * 2 - 1
    times = []
    if args.infer:
        G.eval()
        with torch.no_grad():
            for r in range(args.repeat + 1):
                t0 = time.perf_counter()
                G(a)
                if r:
                    times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"torch infer {size}x{size} batch {args.batch} threads {args.threads}: "
              f"median {med:.4f} s, {args.batch * size * size / med / 1e6:.3f} megapixels/s")
    else:
        G.train(), D.train()
        for r in range(args.repeat + 1):
            t0 = time.perf_counter()
            ref.set_requires_grad(D, False)
            G.zero_grad()
            loss_g, _, y, _ = ref.generator_loss(G, D, a, b, return_outputs=True)
            loss_g.backward()
            ref.set_requires_grad(D, True)
            D.zero_grad()
            ref.discriminator_loss(D, b, [t.detach() for t in y])[0].backward()
            if r:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"torch train {size}x{size} batch {args.batch} threads {args.threads}: "
              f"median {med:.3f} s/step, {1 / med:.2f} steps/s")


if __name__ == "__main__":
    main()
