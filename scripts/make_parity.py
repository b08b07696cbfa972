#!/usr/bin/python3
"""Generate tests/data/parity_small.h5: a whole-image colorize reference.

Usage (from the repository root, with Debian's python which has torch and GDAL):
    /usr/bin/python3 scripts/make_parity.py [--out tests/data/parity_small.h5]

G with the weights and config of tests/data/golden_small.h5 (eval mode, float64),
run once over the whole gray image of tests/data/cogeo_rgb_384x320.tif (zero
padding at the borders, as torch does). Deterministic, offline, byte-identical
reruns. See tests/data/README.md.
"""

import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch
from osgeo import gdal

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402
from make_golden import create_file  # noqa: E402  (v110 format, no timestamps)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "tests/data/cogeo_rgb_384x320.tif"
MODEL = "tests/data/golden_small.h5"
HT = [0.299, 0.587, 0.114]
NOTE = ("y1 = G(gray8/127.5 - 1)[0], one eval-mode pass over the whole image in "
        "float64 with zero padding at the image borders (as torch does); a tiled "
        "pipeline with mirror padding at the raster edges agrees only away from "
        "the image borders (farther than the receptive-field radius).")


def load_generator(path):
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["config"])
        if (cfg["F"], cfg["K"], cfg["R"]) != (8, 16, 2) or cfg["ht_weights"] != HT:
            raise SystemExit("%s: unexpected config %s" % (path, cfg))
        G = ref.Generator(cfg["F"], cfg["K"], cfg["R"])
        sd = G.state_dict()
        stored = []
        f["G"].visit(lambda n: stored.append(n) if isinstance(f["G"][n], h5py.Dataset) else None)
        need = [k for k, v in sd.items() if v.is_floating_point()]
        if sorted(k.replace(".", "/") for k in need) != sorted(stored):
            raise SystemExit("%s: /G does not match Generator(%d,%d,%d)"
                             % (path, cfg["F"], cfg["K"], cfg["R"]))
        for k in need:
            sd[k] = torch.from_numpy(f["G/" + k.replace(".", "/")][()].astype(np.float32))
    G.load_state_dict(sd)
    return G.double().eval()


def read_gray8(path):
    gdal.UseExceptions()
    ds = gdal.Open(path)
    rgb = ds.ReadAsArray()  # (3, H, W)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise SystemExit("%s: expected a 3-band Byte raster, got %s %s"
                         % (path, rgb.shape, rgb.dtype))
    r, g, b = rgb.astype(np.float64)
    gray = np.rint(HT[0] * r + HT[1] * g + HT[2] * b)  # round half to even
    return np.clip(gray, 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "parity_small.h5"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    G = load_generator(os.path.join(REPO, MODEL))
    gray8 = read_gray8(os.path.join(REPO, SOURCE))
    x = torch.from_numpy(gray8.astype(np.float64) / 127.5 - 1.0)[None, None]
    with torch.no_grad():
        y1 = G(x)[0][0].numpy()  # (3, H, W) float64
    rgb8 = np.clip(np.rint((y1 + 1.0) * 127.5), 0, 255).astype(np.uint8)

    tmp = args.out + ".tmp"
    with create_file(tmp) as f:
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        h5py.h5g.create(f.id, b"parity", gcpl=gcpl)
        p = f["parity"]
        p.attrs["source"] = SOURCE
        p.attrs["model"] = MODEL
        p.attrs["ht_weights"] = np.array(HT, dtype=np.float64)
        p.attrs["note"] = NOTE
        for name, arr, shuffle in (("gray8", gray8, False),
                                   ("rgb8", rgb8, False),
                                   ("y1", y1.astype(np.float32), True)):
            chunks = arr.shape if arr.ndim == 2 else (1,) + arr.shape[1:]  # one per channel
            p.create_dataset(name, data=arr, chunks=chunks, compression="gzip",
                             compression_opts=9, shuffle=shuffle, track_times=False)
    os.replace(tmp, args.out)

    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))
    print("  rgb8 mean per channel: %s" % " ".join("%.4f" % m for m in rgb8.mean(axis=(1, 2))))


if __name__ == "__main__":
    main()
