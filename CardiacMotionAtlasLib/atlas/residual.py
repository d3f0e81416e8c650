"""Per-subject residual warp: a small, smooth, time-invariant deformation fitted after the codes.

Why: the codes of an auto-decoder only reach the shapes the training cohort spans. A heart of another
family (other construction, other proportions) is then fitted at ~2 mm even at the frame that was
observed, whatever the fit's steps or prior weight (``benchmarks.atlas``, ``ED_chamfer_mm``). The
residual closes that gap without touching the networks: the subject's canonical point ``p`` goes
through ``R(p) = p + u(p)`` before ``D1``, so

    ``F_subject(p, t) = T(D1(R(p), c_p), D2(t, c_t))``

and the atlas' motion (template phases, material motion, timing) is carried unchanged to the
corrected shape. ``u`` is a uniform cubic B-spline free-form deformation (C2) on a ``grid^3`` lattice of
control displacements over ``[-extent, extent]^3`` (canonical units), fitted with the codes frozen and
a penalty on the control displacements and their lattice differences, which keeps ``R`` a small
diffeomorphism (``det J > 0``; :func:`residual_jacobian_determinant` checks it). Its inverse (meshes go
template -> subject) is the fixed point ``q = x - u(q)``, a contraction while ``|grad u| < 1``.

Motion residual (issue 16): a time-invariant ``R`` cannot change how far a heart contracts; every
subject then reaches the template's ES shape (only reshaped by ``D1``), and the atlas underfits each
heart's contraction amplitude (training codes: ~50 % LVEF for true 28-65 %). The subject's warp is
therefore ``R(p, t) = p + u0(p) + m(t') u1(p)`` with ``t' = D2(t, c_t)`` the subject's template phase
and ``m`` the template's contraction profile (:func:`contraction_profile`: 0 at ED, 1 at the template's
ES ``t'_ES``, back to 0 at the end of the cycle). ``u1`` is a second B-spline field on the same lattice,
fitted from the frames beyond ED: how much more or less than the template this heart moves, at the
subject's own timing. Both fields are linear in their control displacements, so at each phase ``R`` is
one B-spline warp with coefficients ``C0 + m C1`` (:func:`coefficients_at`) and inverts as above.

Transmural offset (issue 16): any smooth warp moves the endocardium and the epicardium of a ~10 mm wall
the same way (the lattice spacing is ~25 mm), so the wall keeps the template's thickness and thickening;
the fitted ES cavity then stays too small (over-contraction, LVEF too high) although the surfaces fit on
average. The subject's field therefore also subtracts a smooth scalar offset,
``F_subject(p, t) = F(R(p, t), t) - w(p, t)`` with ``w(p, t) = w0(p) + m(t') w1(p)`` (canonical units,
B-spline on the same lattice, :func:`scalar_offset`): the zero level set moves by ``w`` along its outward
normal on both sides of the wall at once (``w > 0`` thickens the wall, ``w < 0`` thins it), the
transmural degree of freedom a displacement field lacks. Meshes get it as each vertex moved by ``w``
along the mesh's outward vertex normal (:func:`offset_along_normals`), which keeps the template's faces
(closed, manifold, genus 0) while ``|w|`` stays well below half the wall thickness.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .errors import AtlasError

DEFAULT_EXTENT = 1.3
"""Half-width (canonical units) of the residual's control lattice: past the heart's box ``[-1, 1]^3``."""
INVERSE_ITERATIONS = 40


def _cubic_bspline(u: torch.Tensor) -> torch.Tensor:
    """Centred uniform cubic B-spline ``B3(u)`` (support ``|u| < 2``, C2)."""
    a = u.abs()
    inner = 2.0 / 3.0 - a**2 + 0.5 * a**3
    outer = (2.0 - a).clamp_min(0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def _basis(x: torch.Tensor, grid: int, extent: float) -> torch.Tensor:
    """``(N, grid)`` B-spline weights of coordinates ``x`` ``(N,)`` on the lattice's knots."""
    spacing = 2.0 * extent / (grid - 1)
    knots = torch.linspace(-extent, extent, grid, dtype=x.dtype, device=x.device)
    return _cubic_bspline((x[:, None] - knots[None]) / spacing)


def residual_displacement(points: torch.Tensor, coefficients: torch.Tensor,
                          extent: float = DEFAULT_EXTENT) -> torch.Tensor:
    """``u(p)``: ``(N, 3)`` displacement (canonical units) at ``points`` ``(N, 3)`` from control
    displacements ``coefficients`` ``(G, G, G, 3)`` indexed ``[x, y, z, component]``."""
    grid = coefficients.shape[0]
    bx, by, bz = (_basis(points[:, axis], grid, extent) for axis in range(3))
    return torch.einsum("ni,nj,nk,ijkc->nc", bx, by, bz, coefficients.to(points.dtype))


def apply_residual(points: torch.Tensor, coefficients: Optional[torch.Tensor],
                   extent: float = DEFAULT_EXTENT) -> torch.Tensor:
    """``R(p) = p + u(p)`` (identity when ``coefficients`` is None)."""
    if coefficients is None:
        return points
    return points + residual_displacement(points, coefficients, extent)


def _residual_jacobian(points: torch.Tensor, coefficients: torch.Tensor, extent: float) -> torch.Tensor:
    """``(N, 3, 3)`` Jacobian ``dR/dp`` of ``R`` at ``points`` (autograd, one backward pass per row)."""
    with torch.enable_grad():
        query = points.detach().clone().requires_grad_(True)
        warped = apply_residual(query, coefficients.detach(), extent)
        rows = [torch.autograd.grad(warped[:, c].sum(), query, retain_graph=c < 2)[0] for c in range(3)]
    return torch.stack(rows, dim=1)


def invert_residual(points: torch.Tensor, coefficients: Optional[torch.Tensor], extent: float = DEFAULT_EXTENT,
                    iterations: int = INVERSE_ITERATIONS, tolerance: float = 1e-6,
                    newton_steps: int = 8) -> torch.Tensor:
    """``R^-1(x)``: ``iterations`` of the fixed point ``q = x - u(q)`` (a contraction while ``|grad u| < 1``),
    then Newton steps ``q -= J(q)^-1 (R(q) - x)`` for the points not yet within ``tolerance`` (fast where
    ``|grad u|`` approaches 1, which slows the fixed point); raises :class:`AtlasError` when neither
    converges (a residual too large to be inverted)."""
    if coefficients is None:
        return points
    query = points.clone()
    for _ in range(iterations):
        query = points - residual_displacement(query, coefficients, extent)
    for _ in range(newton_steps):
        mismatch = apply_residual(query, coefficients, extent) - points
        unconverged = mismatch.norm(dim=1) > tolerance
        if not bool(unconverged.any()):
            break
        jacobian = _residual_jacobian(query[unconverged], coefficients, extent)
        step = torch.linalg.solve(jacobian, mismatch[unconverged].unsqueeze(-1)).squeeze(-1)
        query = query.clone()
        query[unconverged] = query[unconverged] - step.to(query.dtype)
    error = (apply_residual(query, coefficients, extent) - points).norm(dim=1).max()
    if not torch.isfinite(error) or float(error) > max(tolerance, 1e-4):
        raise AtlasError(f"the residual warp could not be inverted (error {float(error):.2e} canonical units)")
    return query.detach()


def contraction_profile(template_phases: torch.Tensor, template_es_phase: float) -> torch.Tensor:
    """``m(t')``: the template's contraction profile at template phases ``t'`` (normalised cycle phase):
    ``(1 - cos(pi t' / t'_ES)) / 2`` up to ``t'_ES`` (0 at ED, 1 at ES), then ``(1 + cos(pi (t' - t'_ES) /
    (1 - t'_ES))) / 2`` back to 0 at ``t' = 1``; C1 and periodic (``t'`` taken modulo 1)."""
    es = float(min(max(template_es_phase, 0.05), 0.95))
    t = torch.remainder(template_phases, 1.0)
    systole = 0.5 * (1.0 - torch.cos(torch.pi * t.clamp(max=es) / es))
    diastole = 0.5 * (1.0 + torch.cos(torch.pi * (t - es).clamp(min=0.0) / (1.0 - es)))
    return torch.where(t <= es, systole, diastole)


def coefficients_at(coefficients: Optional[torch.Tensor], motion_coefficients: Optional[torch.Tensor],
                    profile: float) -> Optional[torch.Tensor]:
    """Control displacements ``C0 + m C1`` of the warp at one phase (``m = profile``); None when both are
    None (no warp)."""
    if motion_coefficients is None:
        return coefficients
    base = torch.zeros_like(motion_coefficients) if coefficients is None else coefficients
    return base + float(profile) * motion_coefficients.to(base.dtype)


def apply_motion_residual(points: torch.Tensor, coefficients: Optional[torch.Tensor],
                          motion_coefficients: Optional[torch.Tensor], profile: torch.Tensor,
                          extent: float = DEFAULT_EXTENT) -> torch.Tensor:
    """``R(p, t) = p + u0(p) + m u1(p)`` at ``points`` ``(N, 3)`` with per-point profile values ``m``
    ``(N,)`` (either field may be None)."""
    out = apply_residual(points, coefficients, extent)
    if motion_coefficients is None:
        return out
    return out + profile[:, None].to(points.dtype) * residual_displacement(points, motion_coefficients, extent)


def motion_residual_jacobian_determinant(coefficients: Optional[torch.Tensor],
                                         motion_coefficients: Optional[torch.Tensor],
                                         profiles: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                                         resolution: int = 24, extent: float = 1.0) -> np.ndarray:
    """Minimum over ``profiles`` (values of ``m``) of :func:`residual_jacobian_determinant` of ``C0 + m C1``,
    per grid point ``(n^3,)``: the time-varying warp is a diffeomorphism at every phase."""
    reference = coefficients if coefficients is not None else motion_coefficients
    if reference is None:
        raise AtlasError("no residual warp to check")
    return np.min(np.stack([residual_jacobian_determinant(coefficients_at(coefficients, motion_coefficients, m),
                                                          resolution, extent) for m in profiles]), axis=0)


def scalar_offset(points: torch.Tensor, coefficients: Optional[torch.Tensor],
                  motion_coefficients: Optional[torch.Tensor] = None, profile: Optional[torch.Tensor] = None,
                  extent: float = DEFAULT_EXTENT) -> torch.Tensor:
    """``w(p) = w0(p) + m w1(p)``: ``(N,)`` transmural offset (canonical units; > 0 thickens the wall) at
    ``points`` ``(N, 3)`` from scalar control values ``(G, G, G)`` (either may be None; ``profile`` ``(N,)``
    the values of ``m``, needed with ``motion_coefficients``)."""
    out = torch.zeros(len(points), dtype=points.dtype, device=points.device)
    if coefficients is not None:
        out = out + residual_displacement(points, coefficients[..., None], extent)[:, 0]
    if motion_coefficients is not None:
        if profile is None:
            raise AtlasError("a time-varying offset needs the profile values m")
        out = out + profile.to(points.dtype) * residual_displacement(points, motion_coefficients[..., None], extent)[:, 0]
    return out


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` unit area-weighted vertex normals of a closed triangle mesh, oriented outward (flipped when
    the faces wind inward, i.e. the signed enclosed volume is negative)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = torch.linalg.cross(b - a, c - a)  # twice the area times the unit normal
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1),
                                                    face_normals.repeat_interleave(3, dim=0))
    if float((a * torch.linalg.cross(b, c)).sum()) < 0:  # six times the signed volume
        normals = -normals
    return normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)


def offset_along_normals(vertices: torch.Tensor, faces: torch.Tensor, coefficients: Optional[torch.Tensor],
                         motion_coefficients: Optional[torch.Tensor], profile: float,
                         extent: float = DEFAULT_EXTENT) -> torch.Tensor:
    """Mesh vertices ``(V, 3)`` (subject canonical frame) moved by ``w(x) n(x)`` (:func:`scalar_offset` at one
    profile value ``m``, ``n`` the outward vertex normal): the mesh of ``F(R(p, t), t) - w(p, t)``."""
    if coefficients is None and motion_coefficients is None:
        return vertices
    profile_values = torch.full((len(vertices),), float(profile), dtype=vertices.dtype, device=vertices.device)
    offset = scalar_offset(vertices, coefficients, motion_coefficients, profile_values, extent)
    return vertices + offset[:, None] * vertex_normals(vertices, faces)


def residual_penalty(coefficients: torch.Tensor) -> torch.Tensor:
    """Mean squared control displacement plus mean squared lattice difference along each axis
    (canonical units squared): small and smooth."""
    penalty = (coefficients**2).mean()
    for axis in range(3):
        penalty = penalty + (torch.diff(coefficients, dim=axis) ** 2).mean()
    return penalty


def residual_jacobian_determinant(coefficients: torch.Tensor, resolution: int = 24,
                                  extent: float = 1.0) -> np.ndarray:
    """``(n^3,)`` determinant of the Jacobian of ``R`` on a grid over ``[-extent, extent]^3`` (autograd)."""
    axis = torch.linspace(-extent, extent, resolution, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    coefficients = coefficients.detach().to(torch.float64).cpu()
    rows = []
    for component in range(3):
        query = points.clone().requires_grad_(True)
        value = apply_residual(query, coefficients)[:, component].sum()
        rows.append(torch.autograd.grad(value, query)[0])
    jacobian = torch.stack(rows, dim=1)  # (N, 3, 3): d R_c / d p_k
    return torch.linalg.det(jacobian).numpy()


__all__ = ["DEFAULT_EXTENT", "residual_displacement", "apply_residual", "invert_residual", "residual_penalty",
           "residual_jacobian_determinant", "contraction_profile", "coefficients_at", "apply_motion_residual",
           "motion_residual_jacobian_determinant", "scalar_offset", "vertex_normals", "offset_along_normals"]
