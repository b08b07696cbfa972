#!/usr/bin/python3
"""Generate tests/data/ssim_skimage.h5: image pairs and scikit-image's figures for them.

Usage (from the repository root, with Debian's python, which has scikit-image,
scipy, h5py and GDAL's osgeo):
    /usr/bin/python3 scripts/make_ssim_fixtures.py [--out tests/data/ssim_skimage.h5]

Each pair is a real colour crop x from a raster fixture in tests/data and a
version y of it (itself, noisy, blurred, shifted, channels swapped, the gray
copy, a flat image). For each pair the file holds skimage's SSIM per channel
(structural_similarity with gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255), their mean, its MSE and PSNR,
and for some pairs the full SSIM maps. Deterministic, offline, byte-identical
reruns. See tests/data/README.md.
"""

import argparse
import os
import sys

import h5py
import numpy as np
import scipy.ndimage as ndi
import skimage
from osgeo import gdal
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import create_file  # noqa: E402  (v110 format, no timestamps)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HT = np.array([0.299, 0.587, 0.114], dtype=np.float32)
SSIM_ARGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def crop(name, x, y, w, h):
    """R, G, B (bands 1-3) of a window of a tests/data raster, as uint8 [3, h, w]."""
    gdal.UseExceptions()
    ds = gdal.Open(os.path.join(REPO, "tests", "data", name))
    rgb = ds.ReadAsArray(x, y, w, h, band_list=[1, 2, 3])
    assert rgb.dtype == np.uint8 and rgb.shape == (3, h, w), (name, rgb.shape)
    return rgb


def to_uint8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def gray_copy(rgb):
    """H_t in float32, in the order of the C code (w0 r + w1 g) + w2 b, rounded half to
    even: the gray colorize makes of an 8-bit RGB raster, in all three channels."""
    r, g, b = rgb.astype(np.float32)
    gray = to_uint8((HT[0] * r + HT[1] * g) + HT[2] * b)
    return np.stack([gray, gray, gray])


def pairs():
    rng = np.random.default_rng(20261126)
    cogeo = crop("cogeo_rgb_384x320.tif", 100, 120, 64, 48)
    cogeo_shifted = crop("cogeo_rgb_384x320.tif", 103, 122, 64, 48)
    naip = crop("naip_rgbn_266x204.tif", 30, 50, 57, 41)
    landsat = crop("landsat_rgba_240x200.tif", 150, 100, 40, 36)  # inside the valid area
    jpeg = crop("naip_plain.jpg", 120, 90, 11, 11)
    jpeg_shifted = crop("naip_plain.jpg", 121, 90, 11, 11)
    blur = lambda a, s: to_uint8(np.stack([ndi.gaussian_filter(c.astype(np.float64), s) for c in a]))
    noise = lambda a, s: to_uint8(a.astype(np.float64) + rng.normal(0.0, s, a.shape))
    flat = np.full_like(cogeo, 128)
    flat[1] = 90
    return [
        ("cogeo, noise sigma 12", cogeo, noise(cogeo, 12.0), True),
        ("cogeo, Gaussian blur sigma 1.2", cogeo, blur(cogeo, 1.2), False),
        ("cogeo, shifted by (3, 2) px", cogeo, cogeo_shifted, False),
        ("cogeo, channels swapped (B, G, R)", cogeo, cogeo[::-1].copy(), False),
        ("cogeo, gray copy of rounded H_t", cogeo, gray_copy(cogeo), True),
        ("cogeo, flat colour", cogeo, flat, False),
        ("naip, identical", naip, naip.copy(), False),
        ("naip, gray copy of rounded H_t", naip, gray_copy(naip), False),
        ("naip, noise sigma 40 (clipped)", naip, noise(naip, 40.0), False),
        ("landsat, blur 0.8 and noise 5", landsat, noise(blur(landsat, 0.8), 5.0), False),
        ("jpeg 11x11, shifted by 1 px", jpeg, jpeg_shifted, True),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "ssim_skimage.h5"))
    args = ap.parse_args()

    tmp = args.out + ".tmp"
    with create_file(tmp) as f:
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        f.attrs["skimage_version"] = skimage.__version__
        f.attrs["ssim_args"] = repr(SSIM_ARGS)
        for i, (what, x, y, with_map) in enumerate(pairs()):
            name = "pair%02d" % i
            h5py.h5g.create(f.id, name.encode(), gcpl=gcpl)
            g = f[name]
            g.attrs["what"] = what
            per_channel, maps = [], []
            for c in range(3):
                s, m = structural_similarity(x[c], y[c], full=True, **SSIM_ARGS)
                per_channel.append(s)
                maps.append(m)
            both = structural_similarity(x, y, channel_axis=0, **SSIM_ARGS)
            assert abs(both - np.mean(per_channel)) < 1e-15
            with np.errstate(divide="ignore"):
                psnr = peak_signal_noise_ratio(x, y, data_range=255)
            data = [("x", x), ("y", y),
                    ("ssim_channels", np.array(per_channel, dtype=np.float64)),
                    ("ssim", np.array(both, dtype=np.float64)),
                    ("mse", np.array(mean_squared_error(x, y), dtype=np.float64)),
                    ("psnr", np.array(psnr, dtype=np.float64))]
            if with_map:
                data.append(("ssim_map", np.stack(maps).astype(np.float32)))
            for key, arr in data:
                if arr.ndim == 3:
                    g.create_dataset(key, data=arr, chunks=arr.shape, compression="gzip",
                                     compression_opts=9, track_times=False)
                else:
                    g.create_dataset(key, data=arr, track_times=False)
            print("%s %-36s %2dx%-2d ssim %.6f mse %9.3f psnr %7.3f"
                  % (name, what, x.shape[2], x.shape[1], both, mean_squared_error(x, y), psnr))
    os.replace(tmp, args.out)
    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))


if __name__ == "__main__":
    main()
