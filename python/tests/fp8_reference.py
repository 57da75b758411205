"""The FP8 tests' own e4m3 arithmetic in plain torch, written from the library's contract
(include/swiglu/swiglu.hpp, Fp8Scaling and quantize_e4m3), not from the package: block
quantisation, dequantisation of every scale layout, and the error bounds the tests check against.

e4m3 keeps 3 mantissa bits and rounds to nearest, so its unit roundoff is u = 2^-4: a value v in a
block of scale s is stored as q·s with |q·s − v| ≤ u·|v| while |v|/s is in the normal range
(≥ 2^-6), and ≤ 2^-10·s below it (the subnormals' spacing is 2^-9 of the scale). So every
quantised element is within e(v) = u·|v| + 2^-10·s of v; quantisation_bound() carries that through
the two GEMMs, and gate_bound() through the gate.
"""

import torch
import torch.nn.functional as F

E4M3 = getattr(torch, "float8_e4m3fn", None)
E4M3_MAX = 448.0
U_E4M3 = 2.0 ** -4
SUBNORMAL_HALF_SPACING = 2.0 ** -10  # of the scale
UNIT_ROUNDOFF = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
SILU_SLOPE_MAX = 1.1  # max |silu'(g)| = 1.0998 (at g ≈ 2.4)
# The FP8 tensor cores' sums, as tests/fp8_case.hpp models them from the accumulation probe: an
# instruction's 32 products and its accumulator are aligned to the largest exponent among them and
# truncated 13 bits below it, so it errs by less than 33·2^-13·M, M the largest of them; a 128-wide
# K block is four instructions from zero, then scaled and added in fp32 (two roundings).
TENSOR_CORE_ULP = 2.0 ** -13
FP32_ADD = 2 * 2.0 ** -24


def n_blocks(n: int) -> int:
    return (n + 127) // 128


def quantize_blocks(a: torch.Tensor, block_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """a (rows×cols) in e4m3 with one float32 scale per block_rows×128 block, as the library's
    quantiser: s = amax/448 (1 for an all-zero block; NaNs do not count towards amax, as with CUDA's
    fmaxf), q = e4m3(a/s) rounded to nearest and saturated to ±448."""
    rows, cols = a.shape
    rb, cb = (rows + block_rows - 1) // block_rows, n_blocks(cols)
    if rows == 0 or cols == 0:
        return a.float().to(E4M3), torch.ones(rb, cb)
    mag = a.detach().float().abs()
    mag = torch.where(torch.isnan(mag), torch.zeros_like(mag), mag)
    padded = F.pad(mag, (0, cb * 128 - cols, 0, rb * block_rows - rows))
    amax = padded.reshape(rb, block_rows, cb, 128).amax(dim=(1, 3))
    # Why a tensor divisor: torch divides a CUDA tensor by a Python number as a product with its
    # reciprocal, an ulp off amax/448 for some amax, and a quotient on an e4m3 tie then rounds the
    # other way (bf16 inputs make ties common): a whole row of Z then missed its bound.
    scale = torch.where(amax > 0, amax / torch.full_like(amax, E4M3_MAX), torch.ones_like(amax))
    q = (a.float() / expand(scale, rows, cols, block_rows)).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return q, scale


def expand(scale: torch.Tensor, rows: int, cols: int, block_rows: int) -> torch.Tensor:
    """Row-major block scales (block_rows × 128 blocks) as one scale per element of rows×cols."""
    return scale.repeat_interleave(block_rows, dim=0)[:rows].repeat_interleave(128, dim=1)[:, :cols]


def x_scales(scale: torch.Tensor, scaling: str, batch: int, in_features: int) -> torch.Tensor:
    """X's scales (tensor: one; blocks: B × ceil(I/128), 1×128) per element of X, float64."""
    s = scale.double()
    if scaling == "tensor":
        return s.reshape(()).expand(batch, in_features)
    return expand(s.reshape(batch, n_blocks(in_features)), batch, in_features, 1)


def w_scales(scale: torch.Tensor, scaling: str, hidden: int, in_features: int) -> torch.Tensor:
    """W12's scales per element of W12 (2D×I), float64: tensor, one; channel, 2D (Wa's D then
    Wb's); blocks, 2 × ceil(D/128) × ceil(I/128), Wa's 128×128 blocks row-major, then Wb's."""
    s = scale.double()
    if scaling == "tensor":
        return s.reshape(()).expand(2 * hidden, in_features)
    if scaling == "channel":
        return s.reshape(2 * hidden, 1).expand(2 * hidden, in_features)
    halves = s.reshape(2, n_blocks(hidden), n_blocks(in_features))
    return torch.cat([expand(h, hidden, in_features, 128) for h in halves])


def dequantize_x(q, scale, scaling):
    return q.double() * x_scales(scale, scaling, *q.shape)


def dequantize_w(q, scale, scaling):
    return q.double() * w_scales(scale, scaling, q.shape[0] // 2, q.shape[1])


def dequantize_z(q, scale):
    """Z (B×D e4m3) with its B × ceil(D/128) scales, float64."""
    return q.double() * expand(scale.double(), q.shape[0], q.shape[1], 1)


def swiglu64(x, w12, bias=None):
    """(z, g, u) in float64."""
    h = x.double() @ w12.double().t()
    if bias is not None:
        h = h + bias.double()
    g, u = h.chunk(2, dim=-1)
    return F.silu(g) * u, g, u


def quantisation_bound(x, x_scale_full, w12, w_scale_full):
    """Per element of H = [G | U] (B×2D), a bound on |H(quantised X, W12) − H(X, W12)| in exact
    arithmetic: each element moves by at most e(v) = u·|v| + 2^-10·s (the module docstring), so a
    product by at most e(x)|w| + |x|e(w) + e(x)e(w), and G or U by the sum of those over I."""
    x, w = x.double().abs(), w12.double().abs()
    ex = U_E4M3 * x + SUBNORMAL_HALF_SPACING * x_scale_full
    ew = U_E4M3 * w + SUBNORMAL_HALF_SPACING * w_scale_full
    return sum_abs(ex, w) + sum_abs(x, ew) + sum_abs(ex, ew)


def sum_abs(x, w12):
    """Σ_k |x_k·w_k| per element of H (B×2D), float64."""
    return x.double().abs() @ w12.double().abs().t()


def _decode_slots() -> torch.Tensor:
    """The K positions of a 128-wide block in the order the FP8 decode kernel (fwd_fp8_decode.cuh)
    feeds its instructions, 32 each: per 64-wide chunk, lane t's 16 bytes at 16t give their first 8
    to the chunk's first mma and the last 8 to its second (tests/fp8_case.hpp's tensor_core_run)."""
    return torch.tensor([chunk * 64 + 16 * lane + 8 * half + b
                         for chunk in range(2) for half in range(2) for lane in range(4) for b in range(8)])


def tensor_core_bound(x, w12, order="contiguous"):
    """Per element of H = x·w12ᵀ (float64, on x's device), the FP8 tensor cores' accumulation
    bound (TENSOR_CORE_ULP) in the kernel's instruction order: "contiguous" for the wgmma kernels,
    "decode" for the decode kernel's mma.sync."""
    x, w12 = x.double(), w12.double()
    k = x.shape[-1]
    pad = (0, n_blocks(k) * 128 - k)
    x, w12 = F.pad(x, pad), F.pad(w12, pad)
    if order == "decode":
        idx = (_decode_slots()[None, :] + 128 * torch.arange(n_blocks(k))[:, None]).reshape(-1).to(x.device)
        x, w12 = x[:, idx], w12[:, idx]
    total = torch.zeros(x.shape[0], w12.shape[0], dtype=torch.float64, device=x.device)
    bound = torch.zeros_like(total)
    for k0 in range(0, x.shape[1], 128):
        part, err = torch.zeros_like(total), torch.zeros_like(total)
        for j in range(k0, k0 + 128, 32):
            xg, wg = x[:, j:j + 32], w12[:, j:j + 32]
            largest = (xg[:, None, :] * wg[None, :, :]).abs().amax(-1)
            err = err + 33 * TENSOR_CORE_ULP * torch.maximum(part.abs() + err, largest)
            part = part + xg @ wg.t()
        total = total + part
        bound = bound + err + FP32_ADD * (sum_abs(x[:, k0:k0 + 128], w12[:, k0:k0 + 128]) + total.abs())
    return bound


def accumulation_bound(x, w12, unit):
    """Per element of H, the standard bound on a float sum over I at unit roundoff `unit`:
    I·unit·Σ|x·w|."""
    return x.shape[-1] * unit * sum_abs(x, w12)


def gate_bound(e_h, g, u):
    """A bound e_h on |ΔH| as a bound on |ΔZ|: with |silu'| ≤ 1.1,
    |silu(g + Δg)(u + Δu) − silu(g)u| ≤ 1.1·e_g·(|u| + e_u) + |silu(g)|·e_u."""
    e_g, e_u = e_h.chunk(2, dim=-1)
    return SILU_SLOPE_MAX * e_g * (u.abs() + e_u) + F.silu(g).abs() * e_u


def assert_within(what, got, want, bound):
    """|got − want| ≤ bound element by element; the failure names the worst element."""
    got, want, bound = got.double(), want.double(), bound.double()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    excess = ((got - want).abs() - bound).flatten()
    excess = torch.where(torch.isnan(excess), torch.full_like(excess, float("inf")), excess)
    worst = int(excess.argmax()) if excess.numel() else 0
    assert excess.numel() == 0 or excess[worst] <= 0, (
        f"{what}: {int((excess > 0).sum())} of {excess.numel()} elements over their bound; worst at flat "
        f"index {worst}: got {got.flatten()[worst].item():.6g}, expected {want.flatten()[worst].item():.6g} "
        f"± {bound.flatten()[worst].item():.3g}")
