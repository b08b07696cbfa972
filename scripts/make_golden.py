#!/usr/bin/python3
"""Generate tests/data/golden_small.h5: golden fixtures for the C core.

Usage (from the repository root, with Debian's python which has torch):
    /usr/bin/python3 scripts/make_golden.py [--out tests/data/golden_small.h5]

Deterministic (fixed seeds, single thread), offline, about 2 minutes (most of it
the search for a well-conditioned weight seed, see KINK_MARGIN).
The file is at the same time a valid "spynco-checkpoint" (format_version 1)
written by h5py: /G and /D hold the float32 weights. Everything under /golden
is reference data computed in float64 from those float32 weights and inputs,
then stored as float32. See tests/data/README.md for the layout.
"""

import argparse
import json
import os
import sys
import zlib

import h5py
import numpy as np
import skimage.io
import torch

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AID = os.environ.get("SPYNCO_AID150", "/work/shared/data/aid150")

CONFIG = {"name": "golden-small", "F": 8, "K": 16, "R": 2, "nd": 8,
          "ht_weights": [0.299, 0.587, 0.114], "scales": [1, 2, 3]}
LAMBDA_A, LAMBDA_B, LAMBDA_C = 10.0, 10.0, 1.0
ADAM_LR, ADAM_BETAS, ADAM_EPS = 2e-4, (0.5, 0.999), 1e-8
CROP = 96

# (file relative to aid150/, row offset, column offset) of each 96x96 crop
A_SOURCES = [("Farmland/farmland_1.jpg", 27, 27),
             ("DenseResidential/denseresidential_1.jpg", 0, 54)]
B_SOURCES = [("Farmland/farmland_8.jpg", 54, 0),
             ("DenseResidential/denseresidential_9.jpg", 27, 27)]

GZIP_MIN_ELEMENTS = 1000


def load_crop(rel, r0, c0):
    img = skimage.io.imread(os.path.join(AID, rel))
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise SystemExit("%s: expected an 8-bit RGB image, got %s %s"
                         % (rel, img.shape, img.dtype))
    crop = img[r0:r0 + CROP, c0:c0 + CROP, :]
    if crop.shape[:2] != (CROP, CROP):
        raise SystemExit("%s: crop out of bounds" % rel)
    return crop.astype(np.float64)  # (H,W,3), 0..255


def make_inputs():
    w = CONFIG["ht_weights"]
    a = []
    for rel, r0, c0 in A_SOURCES:
        rgb = load_crop(rel, r0, c0)
        gray8 = np.rint(w[0] * rgb[..., 0] + w[1] * rgb[..., 1] + w[2] * rgb[..., 2])
        gray8 = np.clip(gray8, 0, 255)
        a.append(gray8[None] / 127.5 - 1.0)
    b = []
    for rel, r0, c0 in B_SOURCES:
        rgb = load_crop(rel, r0, c0)
        b.append(rgb.transpose(2, 0, 1) / 127.5 - 1.0)
    return np.stack(a).astype(np.float32), np.stack(b).astype(np.float32)


# Conditioning of the training step at its kinks (the inputs KinkRecorder
# collects). The C code computes in float32, with its own summation orders
# (blocked GEMM, Winograd's transforms, 8-lane sums), so near 0 a kink input
# may land on the other side than in this float64 reference, and that flip
# moves gradients by up to ~1e-3 and can turn the sign of a small one (seen
# with seed 0: a pre-activation of 7.5e-8 with the direct conv, -2.2e-8 with
# Winograd). Two requirements, both measured on the same step:
# - KINK_MARGIN: every |x| >= 1e-6. Unit-scale activations are rounded to
#   ~1e-7 per operation; a few summations deep the float32 values of any
#   implementation are off by ~1e-6.
# - KINK_SIGMAS: every |x| >= 4 x the float32 noise of its tensor, the rms of
#   (float32 - float64) over the tensor with torch's own float32 step. The
#   noise grows with depth and BatchNorm's cancellations: rms 2e-7 at G's
#   first layer, 1e-6 at dec0 (the C code's own: 1.1e-6 at dec0, tails to
#   1e-5), so one absolute margin is either too small for dec0 or needs
#   thousands of seeds. dec0 has 2 x 295k pre-activations (its closest to 0 is
#   ~4e-6 on average), so 4 sigma is about the most that a few hundred seeds
#   reach; it is not a guarantee against float32's tails, only the best
#   conditioned draw within reach.
KINK_MARGIN = 1e-6
KINK_SIGMAS = 6.0
MAX_SEEDS = 2000


class KinkRecorder:
    """Stands in for torch.nn.functional inside torch_reference and records the
    input of every non-smooth point the gradients go through: each ReLU (G),
    each LeakyReLU (D, every call) and the argument of each L1 term (the
    consistency terms and the contours)."""

    def __init__(self):
        self.inputs = []

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def relu(self, x, *args, **kwargs):
        self.inputs.append(x.detach())
        return torch.nn.functional.relu(x, *args, **kwargs)

    def leaky_relu(self, x, *args, **kwargs):
        self.inputs.append(x.detach())
        return torch.nn.functional.leaky_relu(x, *args, **kwargs)

    def l1_loss(self, x, target, *args, **kwargs):
        self.inputs.append((x - target).detach())
        return torch.nn.functional.l1_loss(x, target, *args, **kwargs)


def kink_inputs(sdG32, sdD32, a32, b32, dtype):
    """The kink inputs of the training step's forward passes (G(a), G(ht(b)),
    D's three calls in G's loss, its six in D's loss), computed in dtype."""
    a = torch.from_numpy(a32).to(dtype)
    b = torch.from_numpy(b32).to(dtype)
    G, D = fresh_models(sdG32, sdD32)
    G.to(dtype).train()
    D.to(dtype).train()
    kinks = KinkRecorder()
    functional, ref.F = ref.F, kinks
    try:
        with torch.no_grad():  # the same values as with gradients
            y = ref.generator_loss(G, D, a, b, tuple(CONFIG["ht_weights"]), CONFIG["scales"],
                                   LAMBDA_A, LAMBDA_B, LAMBDA_C, return_outputs=True)[2]
            ref.discriminator_loss(D, b, list(y), CONFIG["scales"])
    finally:
        ref.F = functional
    return kinks.inputs


def conditioning(sdG32, sdD32, a32, b32):
    """(smallest |kink input|, smallest |kink input| / float32 noise of its tensor)."""
    x64 = kink_inputs(sdG32, sdD32, a32, b32, torch.float64)
    x32 = kink_inputs(sdG32, sdD32, a32, b32, torch.float32)
    margin = min(float(x.abs().min()) for x in x64)
    sigmas = min(float(x.abs().min() / (y.double() - x).pow(2).mean().sqrt())
                 for x, y in zip(x64, x32))
    return margin, sigmas


def make_weights(seed):
    """Float32 state dicts of G and D: PyTorch default init with this seed, then
    non-trivial BN (G's BN layers in module order, then D's)."""
    torch.manual_seed(seed)
    G = ref.Generator(CONFIG["F"], CONFIG["K"], CONFIG["R"])
    D = ref.Discriminator(CONFIG["nd"])
    with torch.no_grad():
        for net in (G, D):
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    c = m.num_features
                    m.weight.copy_(1.0 + 0.1 * torch.randn(c))
                    m.bias.copy_(0.1 * torch.randn(c))
                    m.running_mean.copy_(0.1 * torch.randn(c))
                    m.running_var.copy_(0.5 + torch.rand(c))
    return G.state_dict(), D.state_dict()


def float_items(sd):
    """(key, float32 numpy array) for every float tensor (no num_batches_tracked)."""
    for k, v in sd.items():
        if k.endswith("num_batches_tracked") or not v.is_floating_point():
            continue
        yield k, v.detach().cpu().numpy().astype(np.float32)


def fresh_models(sdG, sdD):
    G = ref.Generator(CONFIG["F"], CONFIG["K"], CONFIG["R"])
    D = ref.Discriminator(CONFIG["nd"])
    G.load_state_dict(sdG)
    D.load_state_dict(sdD)
    return G.double(), D.double()


def to_np32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def create_file(path):
    """New HDF5 file without object timestamps, so reruns are byte-identical.

    HDF5 1.10 file format (compact groups, single-chunk index): much smaller
    metadata than h5py's default 'earliest'; pinned to v110 so the bytes do not
    depend on the HDF5 version h5py links. Readable by libhdf5 >= 1.10."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)  # the root group
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fid = h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    return h5py.File(fid)


class Writer:
    def __init__(self, f):
        self.f = f
        self.gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        self.gcpl.set_obj_track_times(False)

    def group(self, path):
        """Create every missing group of path (explicitly: no timestamps)."""
        g = self.f
        for part in [p for p in path.split("/") if p]:
            if part not in g:
                h5py.h5g.create(g.id, part.encode(), gcpl=self.gcpl)
            g = g[part]
        return g

    def _parent(self, path):
        self.group(path.rsplit("/", 1)[0] if "/" in path else "")

    def array(self, path, arr):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        self._parent(path)
        if arr.ndim > 0 and arr.size > GZIP_MIN_ELEMENTS:
            # one chunk per dataset, gzip 9; the byte-shuffle filter only where it
            # helps (it does for network values, not for the 8-bit-derived inputs)
            plain = len(zlib.compress(arr.tobytes(), 9))
            shuf = len(zlib.compress(arr.view(np.uint8).reshape(-1, 4).T.tobytes(), 9))
            self.f.create_dataset(path, data=arr, chunks=arr.shape, compression="gzip",
                                  compression_opts=9, shuffle=shuf < plain,
                                  track_times=False)
        else:
            self.f.create_dataset(path, data=arr, track_times=False)

    def scalar(self, path, value):
        self._parent(path)
        self.f.create_dataset(path, data=np.float32(value), track_times=False)


def stored_weights(seed):
    """(wG, wD, sdG32, sdD32): the float32 arrays written to the file and the
    reference state dicts holding exactly those values (as tensors)."""
    sdG, sdD = make_weights(seed)
    wG = dict(float_items(sdG))
    wD = dict(float_items(sdD))
    sdG32 = {k: (torch.from_numpy(wG[k]) if k in wG else v) for k, v in sdG.items()}
    sdD32 = {k: (torch.from_numpy(wD[k]) if k in wD else v) for k, v in sdD.items()}
    return wG, wD, sdG32, sdD32


def training_step(sdG32, sdD32, a, b, out, scal):
    """One training step (train mode throughout) from the given weights: its
    references go to out and scal."""
    w = tuple(CONFIG["ht_weights"])
    scales = tuple(CONFIG["scales"])
    G, D = fresh_models(sdG32, sdD32)
    G.train()
    D.train()
    ref.set_requires_grad(D, False)
    totG, compsG, y, z = ref.generator_loss(
        G, D, a, b, w, scales, LAMBDA_A, LAMBDA_B, LAMBDA_C, return_outputs=True)
    totG.backward()
    for i in range(3):
        out["golden/train/y%d" % (i + 1)] = to_np32(y[i])
    for i in range(3):
        out["golden/train/z%d" % (i + 1)] = to_np32(z[i])
    for k, v in compsG.items():
        scal["golden/train/loss/" + k] = float(v)
    for k, p in G.named_parameters():
        out["golden/train/grad/G/" + k.replace(".", "/")] = to_np32(p.grad)
    assert all(p.grad is None for p in D.parameters())

    ref.set_requires_grad(D, True)
    D.zero_grad(set_to_none=True)
    fakes = [y[s - 1].detach() for s in scales]  # history pool empty: the images themselves
    totD, compsD = ref.discriminator_loss(D, b, fakes, scales)
    totD.backward()
    for k, v in compsD.items():
        scal["golden/train/loss/" + k] = float(v)
    for k, p in D.named_parameters():
        out["golden/train/grad/D/" + k.replace(".", "/")] = to_np32(p.grad)

    for name, net in (("G", G), ("D", D)):
        for k, v in net.state_dict().items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                out["golden/train/after/%s/%s" % (name, k.replace(".", "/"))] = to_np32(v)

    optG = torch.optim.Adam(G.parameters(), lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    optD = torch.optim.Adam(D.parameters(), lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    optG.step()
    optD.step()
    for name, net in (("G", G), ("D", D)):
        for k, p in net.named_parameters():
            out["golden/train/adam/%s/%s" % (name, k.replace(".", "/"))] = to_np32(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "golden_small.h5"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    a32, b32 = make_inputs()
    a = torch.from_numpy(a32).double()
    b = torch.from_numpy(b32).double()

    # ---- the first weight seed whose training step is well conditioned ---
    first = int(os.environ.get("SPYNCO_GOLDEN_FIRST_SEED", "0"))
    for seed in range(first, MAX_SEEDS):
        wG, wD, sdG32, sdD32 = stored_weights(seed)
        margin, sigmas = conditioning(sdG32, sdD32, a32, b32)
        if margin >= KINK_MARGIN and sigmas >= KINK_SIGMAS:
            break
    else:
        raise SystemExit("no weight seed below %d keeps every kink input %g and %g sigma "
                         "away from 0" % (MAX_SEEDS, KINK_MARGIN, KINK_SIGMAS))
    print("seed %d: smallest |kink input| %.3g, %.2f x its tensor's float32 noise"
          % (seed, margin, sigmas))

    # ---- one training step ----------------------------------------------
    train_out, scal = {}, {}  # path -> float32 array / loss path -> python float
    training_step(sdG32, sdD32, a, b, train_out, scal)

    # ---- eval mode -------------------------------------------------------
    out = {}  # path -> float32 array, written in insertion order
    G, D = fresh_models(sdG32, sdD32)
    G.eval()
    D.eval()
    with torch.no_grad():
        ye = G(a)
        for s in (1, 2, 3):
            out["golden/eval/y%d" % s] = to_np32(ye[s - 1])
        out["golden/eval/d_b"] = to_np32(D(b))
    out.update(train_out)

    # ---- write -----------------------------------------------------------
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with create_file(tmp) as f:
        f.attrs["format"] = "spynco-checkpoint"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["config"] = json.dumps(CONFIG)
        f.attrs["epoch"] = np.int64(0)
        f.attrs["step"] = np.int64(0)
        wr = Writer(f)
        for k, v in wG.items():
            wr.array("G/" + k.replace(".", "/"), v)
        for k, v in wD.items():
            wr.array("D/" + k.replace(".", "/"), v)
        wr.array("golden/a", a32)
        wr.array("golden/b", b32)
        g = f["golden"]
        g.attrs["description"] = (
            "Golden fixtures for the C core; references computed in float64 from "
            "the float32 /G, /D, /golden/a, /golden/b and stored as float32.")
        g.attrs["a_sources"] = json.dumps(
            [{"file": "aid150/" + r, "row": y0, "col": x0, "size": CROP} for r, y0, x0 in A_SOURCES])
        g.attrs["weight_seed"] = np.int64(seed)
        g.attrs["kink_margin"] = margin
        g.attrs["kink_margin_required"] = KINK_MARGIN
        g.attrs["kink_sigmas"] = sigmas
        g.attrs["kink_sigmas_required"] = KINK_SIGMAS
        g.attrs["b_sources"] = json.dumps(
            [{"file": "aid150/" + r, "row": y0, "col": x0, "size": CROP} for r, y0, x0 in B_SOURCES])
        for path, arr in out.items():
            wr.array(path, arr)
        for path, v in scal.items():
            wr.scalar(path, v)
        t = f["golden/train"]
        t.attrs["lambda_a"] = LAMBDA_A
        t.attrs["lambda_b"] = LAMBDA_B
        t.attrs["lambda_c"] = LAMBDA_C
        t.attrs["adam_lr"] = ADAM_LR
        t.attrs["adam_betas"] = np.array(ADAM_BETAS, dtype=np.float64)
        t.attrs["adam_eps"] = ADAM_EPS
    os.replace(tmp, args.out)

    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))
    for path, v in scal.items():
        print("  %-36s %.9g" % (path, v))


if __name__ == "__main__":
    main()
