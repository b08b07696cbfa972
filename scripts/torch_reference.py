"""Independent PyTorch reference implementation of the SpyncoGAN model.

This follows docs/model-spec.md (the model contract) and is used to generate the
golden test fixtures of the C core (scripts/make_golden.py) and for benchmarks.
It has no side effects on import and only depends on torch.

state_dict() keys equal the checkpoint paths of the spec with '/' -> '.':
    G: enc0.conv.weight, enc0.bn.running_mean, res0.conv1.weight, res0.bn2.bias,
       dec2.conv.bias, head.conv.weight, ...
    D: l0.conv.weight, l1.bn.weight, ..., l4.conv.bias

Run with Debian's python (/usr/bin/python3), which has torch installed.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ConvBNReLU", "ResBlock", "UpConvBNReLU", "Head", "Generator",
    "DiscLayer", "Discriminator", "ht", "down", "sobel",
    "generator_loss", "discriminator_loss", "set_requires_grad",
    "count_parameters", "DEFAULT_HT_WEIGHTS",
]

DEFAULT_HT_WEIGHTS = (0.299, 0.587, 0.114)

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def _bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv(cin, cout, k, stride=1):
    # bias, zero padding (k-1)//2 ("same" for stride 1), dilation 1
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=True)


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------
class ConvBNReLU(nn.Module):
    """conv kxk (stride s), BN, ReLU. Submodules: conv, bn."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = _conv(cin, cout, k, stride)
        self.bn = _bn(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ResBlock(nn.Module):
    """x + bn2(conv2(relu(bn1(conv1(x))))) -- no ReLU after the add."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = _conv(c, c, 3)
        self.bn1 = _bn(c)
        self.conv2 = _conv(c, c, 3)
        self.bn2 = _bn(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(h))


class UpConvBNReLU(nn.Module):
    """nearest upsample x2, conv 3x3, BN, ReLU. Submodules: conv, bn."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _conv(cin, cout, 3)
        self.bn = _bn(cout)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(self.bn(self.conv(x)))


class Head(nn.Module):
    """1x1 conv K -> 3, then tanh. Submodule: conv."""

    def __init__(self, k):
        super().__init__()
        self.conv = _conv(k, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


class Generator(nn.Module):
    """SpyncoGAN generator G: gray (N,1,H,W) in [-1,1] -> (y1, y2, y3).

    y1 = head(dec0) at H, y2 = head(dec1) at H/2, y3 = head(dec2) at H/4,
    all with 3 channels in [-1, 1]; the head is ONE module shared by the scales.
    Default config "spynco-s": F=32, K=64, R=6 (1,951,171 parameters).
    """

    def __init__(self, F=32, K=64, R=6):
        super().__init__()
        self.F, self.K, self.R = F, K, R
        self.enc0 = ConvBNReLU(1, F, 7, 1)
        self.enc1 = ConvBNReLU(F, 2 * F, 3, 2)
        self.enc2 = ConvBNReLU(2 * F, 4 * F, 3, 2)
        for i in range(R):
            self.add_module("res%d" % i, ResBlock(4 * F))
        self.dec2 = ConvBNReLU(4 * F, K, 1, 1)
        self.dec1 = UpConvBNReLU(K, K)
        self.dec0 = UpConvBNReLU(K, K)
        self.head = Head(K)

    def forward(self, x):
        h = self.enc0(x)
        h = self.enc1(h)
        h = self.enc2(h)
        for i in range(self.R):
            h = getattr(self, "res%d" % i)(h)
        d2 = self.dec2(h)
        d1 = self.dec1(d2)
        d0 = self.dec0(d1)
        return self.head(d0), self.head(d1), self.head(d2)


# --------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------
class DiscLayer(nn.Module):
    """conv 4x4 (stride s, padding 1), optional BN, optional LeakyReLU(0.2)."""

    def __init__(self, cin, cout, stride, bn, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=True)
        if bn:
            self.bn = _bn(cout)
        else:
            self.bn = None
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act:
            x = F.leaky_relu(x, 0.2)
        return x


class Discriminator(nn.Module):
    """PatchGAN D: color (N,3,H,W) -> scores (N,1,H/8-2,W/8-2). Default nd=32
    (695,137 parameters). No final activation (LSGAN)."""

    def __init__(self, nd=32):
        super().__init__()
        self.nd = nd
        self.l0 = DiscLayer(3, nd, 2, bn=False, act=True)
        self.l1 = DiscLayer(nd, 2 * nd, 2, bn=True, act=True)
        self.l2 = DiscLayer(2 * nd, 4 * nd, 2, bn=True, act=True)
        self.l3 = DiscLayer(4 * nd, 8 * nd, 1, bn=True, act=True)
        self.l4 = DiscLayer(8 * nd, 1, 1, bn=False, act=False)

    def forward(self, x):
        for layer in (self.l0, self.l1, self.l2, self.l3, self.l4):
            x = layer(x)
        return x


# --------------------------------------------------------------------------
# Fixed operators
# --------------------------------------------------------------------------
def ht(rgb, w=DEFAULT_HT_WEIGHTS):
    """H_t: (N,3,H,W) -> (N,1,H,W) = w0*R + w1*G + w2*B."""
    return (w[0] * rgb[:, 0:1] + w[1] * rgb[:, 1:2] + w[2] * rgb[:, 2:3])


def down(x, s):
    """Average pooling by 2**(s-1) (identity for s=1)."""
    f = 2 ** (s - 1)
    if f == 1:
        return x
    return F.avg_pool2d(x, kernel_size=f, stride=f)


def sobel(x):
    """Sobel gradients of a 1-channel image (N,1,H,W) -> (N,2,H-2,W-2).

    Channel 0 = gx = [[-1,0,1],[-2,0,2],[-1,0,1]], channel 1 = gy = gx^T;
    cross-correlation (F.conv2d), unnormalised, no padding ('valid')."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                      dtype=x.dtype, device=x.device)
    k = torch.stack([gx, gx.t()]).unsqueeze(1)  # (2,1,3,3)
    return F.conv2d(x, k)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------
def generator_loss(G, D, a, b, w=DEFAULT_HT_WEIGHTS, scales=(1, 2, 3),
                   lambda_a=10.0, lambda_b=10.0, lambda_c=0.0,
                   return_outputs=False):
    """Generator objective. Returns (total, components), or
    (total, components, y, z) when return_outputs is true.

    y = G(a) is computed first, then z = G(ht(b, w)). For each s in scales
    (in the given order) the weighted terms are
        cons_a_s<s> = lambda_a * mean|ht(y_s) - down(a, s)|
        cons_b_s<s> = lambda_b * mean|z_s - down(b, s)|
        gan_s<s>    = mean((D(y_s) - 1)^2)        (D called for s in order)
    and, if lambda_c > 0,
        contours    = lambda_c * mean|sobel(ht(y_1)) - sobel(a)|.
    components maps those names (and 'total_G') to 0-d tensors; every
    component is already multiplied by its lambda, so total_G is their sum.
    y and z are the tuples (y1, y2, y3) and (z1, z2, z3) (full, half, quarter)
    returned with return_outputs=True.
    Freezing D's parameters (set_requires_grad(D, False)) is the caller's job.
    """
    y = G(a)
    z = G(ht(b, w))
    comps = {}
    total = None

    def add(name, v):
        nonlocal total
        comps[name] = v
        total = v if total is None else total + v

    for s in scales:
        ys, zs = y[s - 1], z[s - 1]
        add("cons_a_s%d" % s, lambda_a * F.l1_loss(ht(ys, w), down(a, s)))
        add("cons_b_s%d" % s, lambda_b * F.l1_loss(zs, down(b, s)))
        p = D(ys)
        add("gan_s%d" % s, F.mse_loss(p, torch.ones_like(p)))
    if lambda_c > 0:
        add("contours", lambda_c * F.l1_loss(sobel(ht(y[0], w)), sobel(a)))
    comps["total_G"] = total
    if return_outputs:
        return total, comps, y, z
    return total, comps


def discriminator_loss(D, b, fakes, scales=(1, 2, 3)):
    """Discriminator objective (LSGAN). Returns (total, components).

    fakes: either a dict {s: fake_s} or a sequence aligned with `scales`
    (fakes[i] is the fake for scales[i]); fakes should be detached generator
    outputs (or history-pool samples). For each s, in order, D is called on the
    real image first, then on the fake:
        d_s<s> = 0.5 * (mean((D(down(b,s)) - 1)^2) + mean(D(fake_s)^2))
    components has d_s<s> and 'total_D' (the sum).
    """
    comps = {}
    total = None
    for i, s in enumerate(scales):
        fake = fakes[s] if isinstance(fakes, dict) else fakes[i]
        pr = D(down(b, s))
        pf = D(fake)
        v = 0.5 * (F.mse_loss(pr, torch.ones_like(pr)) +
                   F.mse_loss(pf, torch.zeros_like(pf)))
        comps["d_s%d" % s] = v
        total = v if total is None else total + v
    comps["total_D"] = total
    return total, comps


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


if __name__ == "__main__":
    g, d = Generator(), Discriminator()
    print("Generator(32,64,6) parameters:", count_parameters(g))
    print("Discriminator(32) parameters:", count_parameters(d))
    with torch.no_grad():
        g.eval()
        d.eval()
        ys = g(torch.zeros(1, 1, 64, 64))
        print("G output shapes:", [tuple(t.shape) for t in ys])
        print("D output shape:", tuple(d(ys[0]).shape))
