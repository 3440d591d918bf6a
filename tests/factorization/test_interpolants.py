"""Tests of gcsampler.factorization.interpolants: the minimum Frobenius- and nuclear-norm
interpolants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcsampler.factorization import interpolants, problems

# Host float64 linear algebra (SVD, lstsq, pinv) is backward stable: results agree to a few
# ulps times the condition number of the 15 x 25 operators (below 10 here) and the dimension,
# i.e. ~1e-14 relative; 1e-12 leaves a factor 100 and still catches any real error.
TOL64 = 1e-12
# min_nuclear_interpolant certifies ||W||_* - min <= TOL_GAP * ||W||_* (default tol 1e-10) by
# a duality gap computed in float64; doubling it covers the rounding of that computation.
TOL_GAP = 1e-10
NUC_RTOL = 2 * TOL_GAP


def nuclear(w):
    return np.linalg.norm(w, "nuc")


def default_problems():
    """The default 5x5 rank-1 problems with 15 measurements, both tasks."""
    return [problems.matrix_sensing(), problems.matrix_completion()]


@pytest.fixture(scope="module")
def solved():
    """(problem, min-nuclear solution) for the default problems and a non-square one."""
    cases = default_problems() + [problems.matrix_sensing(seed=3, n_rows=4, n_cols=6, rank=1,
                                                          measurements=12)]
    return [(p, interpolants.min_nuclear_interpolant(p)) for p in cases]


# ------------------------------------------------------------------ min Frobenius


def test_min_frobenius_matches_lstsq_and_pinv():
    for p in default_problems() + [problems.matrix_sensing(seed=1, n_rows=4, n_cols=6, rank=2,
                                                           measurements=10)]:
        w = interpolants.min_frobenius_interpolant(p)
        assert w.shape == (p.n_rows, p.n_cols) and w.dtype == np.float64
        want = np.linalg.lstsq(p.train_ops, p.train_labels, rcond=None)[0]
        scale = np.linalg.norm(want)
        np.testing.assert_allclose(w.ravel(), want, rtol=0, atol=TOL64 * scale)
        np.testing.assert_allclose(w.ravel(), np.linalg.pinv(p.train_ops) @ p.train_labels,
                                   rtol=0, atol=TOL64 * scale)
        np.testing.assert_allclose(p.train_ops @ w.ravel(), p.train_labels, rtol=0,
                                   atol=TOL64 * np.linalg.norm(p.train_labels))


def test_min_frobenius_of_inconsistent_system_is_min_norm_least_squares():
    # operator 2 repeats operator 1 with another label: rank deficient and inconsistent
    rng = np.random.default_rng(0)
    ops = rng.standard_normal((3, 2, 3))
    ops[2] = ops[1]
    p = problems.from_arrays(ops, [1.0, 2.0, -1.0], rng.standard_normal((1, 2, 3)), [0.0])
    want = np.linalg.lstsq(p.train_ops, p.train_labels, rcond=None)[0]
    np.testing.assert_allclose(interpolants.min_frobenius_interpolant(p).ravel(), want,
                               rtol=0, atol=TOL64 * np.linalg.norm(want))


def test_min_frobenius_predicts_zero_on_the_sensing_test_set():
    # The sensing test operators are an orthonormal basis of span{A_i}^perp and A^+ y lies
    # in span{A_i}, so every test prediction is 0 and the gen loss is mean_j label_j^2.
    p = problems.matrix_sensing()
    w = interpolants.min_frobenius_interpolant(p)
    np.testing.assert_allclose(p.test_ops @ w.ravel(), 0.0, rtol=0, atol=TOL64)
    _, gen = problems.losses(p, w)
    np.testing.assert_allclose(gen, np.mean(p.test_labels**2), rtol=TOL64)


# ------------------------------------------------------------------ min nuclear


def test_min_nuclear_interpolates(solved):
    # the result is projected onto the constraint set in float64: residuals are rounding only
    for p, w in solved:
        assert w.shape == (p.n_rows, p.n_cols) and w.dtype == np.float64
        np.testing.assert_allclose(p.train_ops @ w.ravel(), p.train_labels, rtol=0,
                                   atol=TOL64 * np.linalg.norm(p.train_labels))


def test_min_nuclear_norm_is_at_most_that_of_other_interpolants(solved):
    # min-Frobenius and ground truth are feasible, so their nuclear norms bound the minimum
    for p, w in solved:
        frobenius = interpolants.min_frobenius_interpolant(p)
        assert nuclear(w) <= nuclear(frobenius) * (1 + NUC_RTOL)
        assert nuclear(w) <= nuclear(p.ground_truth) * (1 + NUC_RTOL)


def test_min_nuclear_is_not_improved_along_feasible_directions(solved):
    # An independent check of optimality: W + s d is feasible for d in null(A), so its
    # nuclear norm is at least the minimum >= (1 - TOL_GAP) ||W||_*. Small and large steps.
    rng = np.random.default_rng(1)
    for p, w in solved:
        null_basis = problems.orthogonal_complement(p.train_ops)
        for d in rng.standard_normal((20, len(null_basis))) @ null_basis:
            d = d.reshape(w.shape) / np.linalg.norm(d)
            for s in (-0.1, -1e-3, 1e-3, 0.1):
                assert nuclear(w + s * d) >= nuclear(w) * (1 - NUC_RTOL)


def tangent_certificate(p):
    """Margin, constants and injectivity of the least-squares dual certificate at W*.

    With W* = U S V^T of rank r and T = {U X + Y V^T}, W* is the unique minimum nuclear-norm
    interpolant if A is injective on T and some Y in range(A^T) has P_T(Y) = U V^T and
    beta = ||P_T^perp(Y)||_op < 1 (Candes & Recht 2009, Sec. 3; Recht, Fazel & Parrilo 2010).
    Y here is the least-squares choice A^T lambda with the min-norm lambda.
    Returns (beta, ||A||_op, sigma_min of A restricted to T).
    """
    n1, n2 = p.n_rows, p.n_cols
    rank = np.linalg.matrix_rank(p.ground_truth)
    u, _, vt = np.linalg.svd(p.ground_truth)
    pu, pv = u[:, :rank] @ u[:, :rank].T, vt[:rank].T @ vt[:rank]

    def p_t(m):
        return pu @ m + m @ pv - pu @ m @ pv

    tangent = np.stack([p_t(e.reshape(n1, n2)).ravel() for e in np.eye(n1 * n2)], axis=1)
    basis = np.linalg.svd(tangent)[0][:, :rank * (n1 + n2 - rank)]  # orthonormal basis of T
    a_t = p.train_ops @ basis
    uv = (u[:, :rank] @ vt[:rank]).ravel()
    lam = np.linalg.lstsq(a_t.T, basis.T @ uv, rcond=None)[0]
    y = (p.train_ops.T @ lam).reshape(n1, n2)
    np.testing.assert_allclose(p_t(y).ravel(), uv, rtol=0, atol=TOL64)  # P_T(Y) = U V^T
    beta = np.linalg.norm(y - p_t(y), 2)
    return beta, np.linalg.norm(p.train_ops, 2), np.linalg.svd(a_t, compute_uv=False)[-1]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("make", [problems.matrix_sensing, problems.matrix_completion])
def test_min_nuclear_recovers_low_rank_ground_truth(make):
    # 10x10 rank 1 has r (n1 + n2 - r) = 19 degrees of freedom; 80 generic measurements are
    # well above the ~3 r (n1 + n2 - r) = 57 that suffice for Gaussian sensing (Chandrasekaran
    # et al. 2012). Rather than rely on a probability bound, check the dual certificate for
    # this very problem, which proves W* is the unique minimizer.
    p = make(seed=0, n_rows=10, n_cols=10, rank=1, measurements=80)
    beta, a_norm, a_t_min = tangent_certificate(p)
    # measured: beta 0.72 (sensing) / 0.21 (completion), sigma_min(A_T) 0.54 / 0.64
    assert beta < 0.9 and a_t_min > 0.1
    w = interpolants.min_nuclear_interpolant(p)
    # For feasible W = W* + H (A H = 0) the certificate gives ||W||_* - ||W*||_* >=
    # (1 - beta) ||P_T^perp H||_* and ||P_T H||_F <= ||A|| ||P_T^perp H||_F / sigma_min(A_T),
    # so ||H||_F <= gap (1 + ||A|| / sigma_min(A_T)) / (1 - beta), with the certified
    # gap <= TOL_GAP ||W||_*; TOL64 covers rounding (W is feasible only to float64 rounding).
    bound = NUC_RTOL * nuclear(w) * (1 + a_norm / a_t_min) / (1 - beta) + TOL64
    assert np.linalg.norm(w - p.ground_truth) <= bound


def test_min_nuclear_of_zero_labels_is_zero():
    p = problems.matrix_sensing()._replace(train_labels=np.zeros(15))
    np.testing.assert_array_equal(interpolants.min_nuclear_interpolant(p),
                                  np.zeros((5, 5)))


def test_min_nuclear_warns_when_max_iter_is_too_small():
    with pytest.warns(RuntimeWarning, match="max_iter"):
        interpolants.min_nuclear_interpolant(problems.matrix_completion(), max_iter=10)


def test_min_nuclear_leaves_the_global_precision_alone(solved):
    x64 = jax.config.jax_enable_x64
    interpolants.min_nuclear_interpolant(solved[0][0])
    assert jax.config.jax_enable_x64 == x64
    assert jnp.ones(()).dtype == (jnp.float64 if x64 else jnp.float32)


# ------------------------------------------------------------------ losses and input checks


def test_reference_losses(solved):
    p, w = solved[0]
    out = interpolants.reference_losses(p)
    assert set(out) == {"min_frobenius_train_loss", "min_frobenius_gen_loss",
                        "min_nuclear_train_loss", "min_nuclear_gen_loss"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())
    # residuals are float64 rounding (~1e-16), so squared train losses are far below 1e-24
    assert out["min_frobenius_train_loss"] < 1e-24 and out["min_nuclear_train_loss"] < 1e-24
    np.testing.assert_allclose(out["min_frobenius_gen_loss"], np.mean(p.test_labels**2),
                               rtol=TOL64)
    # the same deterministic float64 computation as the fixture's solution
    np.testing.assert_allclose(out["min_nuclear_gen_loss"], problems.losses(p, w)[1],
                               rtol=TOL64)


@pytest.mark.parametrize("field", ["train_ops", "train_labels"])
def test_non_finite_train_data_is_refused(field):
    p = problems.matrix_sensing()
    bad = getattr(p, field).copy()
    bad.flat[3] = np.nan
    p = p._replace(**{field: bad})
    for solve in (interpolants.min_frobenius_interpolant,
                  interpolants.min_nuclear_interpolant, interpolants.reference_losses):
        with pytest.raises(ValueError, match=field):
            solve(p)


def test_non_finite_test_data_is_refused_by_reference_losses():
    p = problems.matrix_sensing()
    p = p._replace(test_labels=np.full_like(p.test_labels, np.inf))
    with pytest.raises(ValueError, match="test_labels"):
        interpolants.reference_losses(p)


@pytest.mark.parametrize("kwargs", [{"tol": 0.0}, {"max_iter": 0}, {"max_iter": 1.5}])
def test_bad_solver_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        interpolants.min_nuclear_interpolant(problems.matrix_sensing(), **kwargs)
