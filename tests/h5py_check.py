#!/usr/bin/python3
"""h5py side of test_checkpoint: checkpoints must work across implementations.

    h5py_check.py check FILE EPOCH STEP   verify a C-written checkpoint
    h5py_check.py write FILE              write a small checkpoint with h5py

The layout is derived here from ../shared/docs/model-spec.md, independently of the C
code. Both sides fill tensors with the same exactly representable pattern
(see pattern()), so values can be compared bit for bit. `write` stores
`format` as a fixed-length string and `format_version` as int32, to exercise
the reader's conversions (h5py's defaults, variable-length strings and int64,
are what the C writer produces and `check` reads).
Exit status 0 when everything matches; otherwise the problems on stderr and 1.
"""

import json
import sys

import h5py
import numpy as np

SMALL_CONFIG = {"name": "h5py-small", "F": 8, "K": 16, "R": 2, "nd": 8,
                "ht_weights": [0.299, 0.587, 0.114], "scales": [1, 2, 3]}
SMALL_EPOCH, SMALL_STEP = 7, 1234
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def unit(layout, prefix, conv, bn, cin, cout, k):
    layout[f"{prefix}/{conv}/weight"] = (cout, cin, k, k)
    layout[f"{prefix}/{conv}/bias"] = (cout,)
    if bn:
        for name in BN_TENSORS:
            layout[f"{prefix}/{bn}/{name}"] = (cout,)


def spec_layout(cfg):
    """{absolute dataset path: shape} of G and D, from the spec's tables."""
    F, K, R, nd = cfg["F"], cfg["K"], cfg["R"], cfg["nd"]
    g = {}
    unit(g, "enc0", "conv", "bn", 1, F, 7)
    unit(g, "enc1", "conv", "bn", F, 2 * F, 3)
    unit(g, "enc2", "conv", "bn", 2 * F, 4 * F, 3)
    for i in range(R):
        unit(g, f"res{i}", "conv1", "bn1", 4 * F, 4 * F, 3)
        unit(g, f"res{i}", "conv2", "bn2", 4 * F, 4 * F, 3)
    unit(g, "dec2", "conv", "bn", 4 * F, K, 1)
    unit(g, "dec1", "conv", "bn", K, K, 3)
    unit(g, "dec0", "conv", "bn", K, K, 3)
    unit(g, "head", "conv", None, K, 3, 1)
    d = {}
    unit(d, "l0", "conv", None, 3, nd, 4)
    unit(d, "l1", "conv", "bn", nd, 2 * nd, 4)
    unit(d, "l2", "conv", "bn", 2 * nd, 4 * nd, 4)
    unit(d, "l3", "conv", "bn", 4 * nd, 8 * nd, 4)
    unit(d, "l4", "conv", None, 8 * nd, 1, 4)
    layout = {"/G/" + k: v for k, v in g.items()}
    layout.update({"/D/" + k: v for k, v in d.items()})
    return layout


def pattern(path, shape):
    """Element i of dataset `path`: ((31 i + sum of path bytes) mod 1009 - 504) / 256,
    exact in float32; the C test computes the same."""
    s = sum(path.encode())
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((i * 31 + s) % 1009 - 504) / 256.0).astype(np.float32).reshape(shape)


def datasets(f):
    found = {}
    f.visititems(lambda name, obj: found.__setitem__("/" + name, obj)
                 if isinstance(obj, h5py.Dataset) else None)
    return found


def check(path, epoch, step):
    problems = []
    with h5py.File(path, "r") as f:
        a = f.attrs
        if a.get("format") != "spynco-checkpoint":
            problems.append(f"format attribute is {a.get('format')!r}")
        for name, want in (("format_version", 1), ("epoch", epoch), ("step", step)):
            v = a.get(name)
            if not isinstance(v, np.integer) or v != want:
                problems.append(f"attribute {name} is {v!r}, expected integer {want}")
        cfg = json.loads(a["config"])
        for key in ("name", "F", "K", "R", "nd", "ht_weights", "scales"):
            if key not in cfg:
                problems.append(f"config lacks {key!r}: {a['config']}")
        layout = spec_layout(cfg)
        found = datasets(f)
        for p in sorted(set(layout) - set(found)):
            problems.append(f"missing dataset {p}")
        for p in sorted(set(found) - set(layout)):
            problems.append(f"unexpected dataset {p}")
        for p in sorted(set(layout) & set(found)):
            ds = found[p]
            if ds.shape != layout[p]:
                problems.append(f"{p}: shape {ds.shape}, expected {layout[p]}")
            elif ds.dtype != np.dtype("<f4"):
                problems.append(f"{p}: dtype {ds.dtype}, expected float32")
            elif ds.chunks is not None or ds.compression is not None:
                problems.append(f"{p}: chunked or compressed, expected plain contiguous")
            elif not np.array_equal(ds[()], pattern(p, layout[p])):
                problems.append(f"{p}: values differ from the pattern")
    return problems


def write(path):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("spynco-checkpoint")
        f.attrs["format_version"] = np.int32(1)
        f.attrs["config"] = json.dumps(SMALL_CONFIG)
        f.attrs["epoch"] = np.int64(SMALL_EPOCH)
        f.attrs["step"] = np.int64(SMALL_STEP)
        for p, shape in spec_layout(SMALL_CONFIG).items():
            f.create_dataset(p, data=pattern(p, shape))
    return []


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "check":
        problems = check(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "write":
        problems = write(sys.argv[2])
    else:
        sys.exit(__doc__)
    for p in problems:
        print(f"{sys.argv[2]}: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
