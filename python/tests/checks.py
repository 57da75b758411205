"""The comparison the C++ tests use (TESTING.md, "How a result is checked"), for torch tensors.

rel_l2 = ‖out − ref‖₂ / ‖ref‖₂ and max_rel = max |out − ref| / max(|ref|, rms(ref)), computed in
float64; a failure names the worst element. The tolerances are TESTING.md's tables.
"""

import torch

# (rel_l2, max_rel) per dtype, "tf32" for float32 with TF32 math.
FORWARD_TOL = {torch.float32: (2e-5, 2e-4), "tf32": (5e-3, 5e-2),
               torch.float16: (3e-3, 1e-2), torch.bfloat16: (1e-2, 3e-2)}
GRADIENT_TOL = {torch.float32: (1e-4, 1e-3), "tf32": (1e-2, 1e-1),
                torch.float16: (5e-3, 3e-2), torch.bfloat16: (2e-2, 8e-2)}


def errors(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, int]:
    """(rel_l2, max_rel, flat index of the worst element) of out against ref."""
    o = out.detach().to(torch.float64).flatten()
    r = ref.detach().to(torch.float64).flatten().to(o.device)
    diff = (o - r).abs()
    ref_norm = r.norm().item()
    rel_l2 = diff.norm().item() / ref_norm if ref_norm > 0 else diff.norm().item()
    rms = (ref_norm / r.numel() ** 0.5) if r.numel() else 0.0
    ratio = diff / torch.clamp(r.abs(), min=rms if rms > 0 else 1.0)
    worst = int(ratio.argmax().item()) if r.numel() else 0
    max_rel = ratio[worst].item() if r.numel() else 0.0
    return rel_l2, max_rel, worst


def assert_close(what: str, out: torch.Tensor, ref: torch.Tensor, tol: tuple[float, float]) -> None:
    """Fails when out is not finite where ref is, or either metric is over tol."""
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    o, r = out.detach().flatten(), ref.detach().flatten().to(out.device)
    bad = ~torch.isfinite(o) & torch.isfinite(r)
    assert not bad.any(), f"{what}: non-finite at flat index {int(bad.nonzero()[0])}"
    rel_l2, max_rel, worst = errors(out, ref)
    assert rel_l2 <= tol[0] and max_rel <= tol[1], (
        f"{what}: rel_l2 {rel_l2:.3e} (tol {tol[0]:.0e}), max_rel {max_rel:.3e} (tol {tol[1]:.0e}); "
        f"worst at flat index {worst}: got {o[worst].item():.6g}, expected {r[worst].item():.6g}")
