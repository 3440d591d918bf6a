"""The exact depth-1 volume (gcsampler.factorization.volume): Ruben's series against scipy,
Monte Carlo, and small-ball asymptotics.

Monte Carlo comparisons allow 4.5 binomial standard errors: with fixed seeds they are
deterministic, and a correct implementation fails one with probability about 7e-6 (two-sided
normal tail) over the choice of seed.
"""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from gcsampler.factorization import problems, volume

MC_SIGMAS = 4.5

# Six unequal weights and offsets: a general (non-isotropic, noncentral) quadratic form.
WEIGHTS = np.array([0.3, 0.5, 1.0, 2.0, 3.5, 6.0])
OFFSETS = np.array([0.2, -0.5, 1.0, 0.1, -0.3, 0.4])


def small_ball_log_asymptote(weights, offsets, t):
    """log of density at the center times the ellipsoid's volume: P(Q < t) ~ this as t -> 0.

    {x: sum_j w_j (x_j + d_j)^2 < t} is an ellipsoid around -d of volume
    pi^(n/2) t^(n/2) / (Gamma(n/2 + 1) sqrt(prod w)), and the N(0, I) density at -d is
    (2 pi)^(-n/2) exp(-|d|^2 / 2).
    """
    n = len(weights)
    return (-0.5 * n * math.log(2.0) - 0.5 * np.sum(offsets**2) - special.gammaln(n / 2 + 1)
            + 0.5 * n * math.log(t) - 0.5 * np.sum(np.log(weights)))


def small_ball_slope(weights, offsets):
    """C in P / asymptote = 1 + C t + O(t^2).

    Averaging the density phi over the ellipsoid: the uniform law on it has covariance
    t diag(1 / w) / (n + 2) and Hess(phi) / phi = d d^T - I at the center, so the average is
    phi(center) (1 + t / (2 (n + 2)) sum_j (d_j^2 - 1) / w_j + O(t^2)).
    """
    return np.sum((offsets**2 - 1.0) / weights) / (2.0 * (len(weights) + 2))


# --- isotropic forms: scipy's noncentral and central chi-square -------------------------------

@pytest.mark.parametrize("t", [0.05, 0.5, 3.0, 10.0, 30.0, 80.0])
@pytest.mark.parametrize("beta_fraction", [None, 0.5, 0.1])
def test_isotropic_form_is_scipy_noncentral_chi2(t, beta_fraction):
    """sum_j lam (g_j + d_j)^2 = lam * ncx2(n, |d|^2). beta < lam makes every gamma_j > 0, so
    the mixing weights are no longer Poisson and the whole recursion is exercised."""
    lam, offsets = 2.0, np.array([0.5, -1.0, 0.3, 2.0, 0.0])
    beta = None if beta_fraction is None else beta_fraction * lam
    log_p, bound = volume.quadratic_form_log_cdf(np.full(5, lam), offsets, t, beta=beta)
    reference = stats.ncx2.logcdf(t / lam, 5, np.sum(offsets**2))
    assert 1e-9 < math.exp(reference) < 1.0  # where scipy's CDF is accurate
    assert abs(log_p - reference) <= 1e-10
    assert 0.0 <= bound <= 1e-14


@pytest.mark.parametrize("t", [1e-3, 1.0, 12.0, 40.0])
def test_central_isotropic_form_is_scipy_chi2(t):
    log_p, _ = volume.quadratic_form_log_cdf(np.full(4, 3.0), np.zeros(4), t)
    assert abs(log_p - stats.chi2.logcdf(t / 3.0, 4)) <= 1e-10


# --- the recursion itself ---------------------------------------------------------------------

def test_mixing_weights_follow_the_convolution_recursion_and_generating_function():
    """The O(n) running-sum recursion against the plain convolution
    k a_k = sum_{r<k} a_r h_{k-1-r} and against the closed-form generating function G(v)."""
    beta = 0.25
    gamma = 1.0 - beta / WEIGHTS
    c = 0.5 * OFFSETS**2 * beta / WEIGHTS
    a0 = math.exp(0.5 * np.sum(np.log(beta / WEIGHTS)) - 0.5 * np.sum(OFFSETS**2))
    terms = 60
    h = [np.sum(gamma ** (i + 1) / 2 + (i + 1) * c * gamma**i) for i in range(terms)]
    direct = [a0]
    for k in range(1, terms):
        direct.append(sum(direct[r] * h[k - 1 - r] for r in range(k)) / k)
    series = volume._RubenWeights(WEIGHTS, OFFSETS, beta)
    fast = np.exp([series.log_a0] + [series.next() for _ in range(terms - 1)])
    np.testing.assert_allclose(fast, direct, rtol=1e-12)
    v = 0.5  # sum_k a_k v^k: the terms beyond 60 are below 0.95^60 / 2^60
    closed = a0 * np.prod((1 - gamma * v) ** -0.5 * np.exp(c * v / (1 - gamma * v)))
    assert abs(np.sum(fast * v ** np.arange(terms)) / closed - 1.0) <= 1e-13


def test_tail_mass_bound_is_an_upper_bound():
    series = volume._RubenWeights(WEIGHTS, OFFSETS, 0.3)
    log_a = np.array([series.log_a0] + [series.next() for _ in range(1500)])
    assert abs(math.expm1(special.logsumexp(log_a))) <= 1e-12  # the a_k sum to 1
    for last in (0, 5, 40, 80, 160, 320):
        tail = math.exp(special.logsumexp(log_a[last + 1:]))
        bound = math.exp(series.log_tail_bound(last))
        assert tail <= bound <= 1.0


@pytest.mark.parametrize("t", [0.3, 4.0, 25.0])
def test_answer_does_not_depend_on_beta(t):
    """Different beta give different mixtures (a_k and chi-square dof), one probability."""
    reference, _ = volume.quadratic_form_log_cdf(WEIGHTS, OFFSETS, t)
    for fraction in (0.9, 0.5, 0.1):
        log_p, _ = volume.quadratic_form_log_cdf(WEIGHTS, OFFSETS, t,
                                                 beta=fraction * WEIGHTS.min())
        assert abs(log_p - reference) <= 1e-11


def test_ill_conditioned_form_matches_quadrature():
    """Weights 1e-4 and 1 (gamma_max = 1 - 1e-4) at t = 2: about t / (2 beta) = 1e4 terms, and
    P = E_g1 P(chi2_1 < 2 - 1e-4 g1^2), a 1-D integral that quad resolves to ~1e-10."""
    log_p, bound = volume.quadratic_form_log_cdf([1e-4, 1.0], [0.0, 0.0], 2.0)
    reference, error = integrate.quad(
        lambda u: stats.norm.pdf(u) * stats.chi2.cdf(2.0 - 1e-4 * u * u, 1),
        -math.sqrt(2e4), math.sqrt(2e4), points=[0.0], limit=500, epsabs=1e-15)
    assert error < 1e-9
    assert abs(log_p - math.log(reference)) <= 1e-9
    assert bound <= 1e-14


@pytest.mark.parametrize("a, z", [(0.5, 1e-300), (5.0, 1e-30), (50.0, 1.0), (500.0, 100.0),
                                  (5000.0, 3000.0)])
def test_incomplete_gamma_series_matches_scipy_where_both_work(a, z):
    """The log-space series used below 1e-250, checked where scipy's gammainc is normal."""
    reference = np.log(special.gammainc(a, z))
    assert -700 < reference < -40
    series = volume._log_gammainc_series(np.array([a]), z)[0]
    assert abs(series - reference) <= 1e-13 * abs(reference)


# --- general weights: Monte Carlo ------------------------------------------------------------

def test_general_form_matches_monte_carlo():
    draws = 1_000_000
    g = np.random.default_rng(0).standard_normal((draws, WEIGHTS.size))
    q = np.square(g + OFFSETS) @ WEIGHTS
    for t in (2.0, 4.0, 6.0):  # p about 0.016, 0.08, 0.17
        p, _ = volume.quadratic_form_log_cdf(WEIGHTS, OFFSETS, t)
        p = math.exp(p)
        assert 0.01 < p < 0.2
        hits = np.count_nonzero(q < t)
        assert abs(hits - draws * p) <= MC_SIGMAS * math.sqrt(draws * p * (1 - p))


# --- tiny probabilities: small-ball asymptotics ------------------------------------------------

WEIGHTS10 = np.array([0.3, 0.5, 1.0, 2.0, 3.5, 6.0, 0.8, 1.7, 2.2, 4.0])
OFFSETS10 = np.array([0.2, -0.5, 1.0, 0.1, -0.3, 0.4, 0.0, 0.7, -0.2, 0.5])


def test_small_ball_ratio_tends_to_one_at_the_predicted_rate():
    """P / asymptote - 1 = C t + O(t^2): monotone towards 0, and C t to first order."""
    slope = small_ball_slope(WEIGHTS10, OFFSETS10)
    errors = []
    for t in (1e-1, 1e-2, 1e-3, 1e-4):
        log_p, _ = volume.quadratic_form_log_cdf(WEIGHTS10, OFFSETS10, t)
        error = math.expm1(log_p - small_ball_log_asymptote(WEIGHTS10, OFFSETS10, t))
        errors.append(error)
        # the O(t^2) remainder: relative to C t it shrinks like t
        assert abs(error - slope * t) <= 0.1 * abs(slope) * t * (t / 1e-1)
    assert all(abs(a) > abs(b) for a, b in zip(errors, errors[1:]))
    assert math.exp(log_p) < 1e-24


@pytest.mark.parametrize("t, log10_p", [(1e-10, -55), (1e-20, -105), (1e-38, -195),
                                        (1e-58, -295), (1e-70, -355)])
def test_tiny_probabilities_stay_finite_and_match_the_asymptote(t, log10_p):
    """Down to p ~ 1e-355 (below float64's range): |C t| < 1e-10, so the asymptote is the
    answer to float64 rounding of the logs (relative 1e-16 * |log p| each)."""
    log_p, bound = volume.quadratic_form_log_cdf(WEIGHTS10, OFFSETS10, t)
    assert math.isfinite(log_p)
    assert abs(log_p / math.log(10) - log10_p) < 1
    reference = small_ball_log_asymptote(WEIGHTS10, OFFSETS10, t)
    slope = abs(small_ball_slope(WEIGHTS10, OFFSETS10))
    assert abs(log_p - reference) <= slope * t + 1e-13 * abs(reference)
    assert bound <= 1e-14


@pytest.mark.parametrize("scale, log_a0_below", [(10.0, -120), (40.0, -1800)])
def test_far_center_where_the_first_mixing_weight_underflows(scale, log_a0_below):
    """Offsets 10x and 40x larger: a_0 ~ exp(-125) and exp(-1872) (the latter is 0 in float64)
    and p from 1e-75 down to 1e-964; the ratio to the asymptote is still 1 + C t + O((C t)^2)."""
    offsets = scale * OFFSETS10
    assert volume._RubenWeights(WEIGHTS10, offsets, WEIGHTS10.min()).log_a0 < log_a0_below
    slope = small_ball_slope(WEIGHTS10, offsets)
    for t in (1e-4, 1e-5, 1e-6):
        log_p, _ = volume.quadratic_form_log_cdf(WEIGHTS10, offsets, t)
        error = math.expm1(log_p - small_ball_log_asymptote(WEIGHTS10, offsets, t))
        assert abs(error - slope * t) <= (slope * t) ** 2 + 1e-13 * abs(log_p)
    log_p, _ = volume.quadratic_form_log_cdf(WEIGHTS10, offsets, 1e-30)
    reference = small_ball_log_asymptote(WEIGHTS10, offsets, 1e-30)
    assert abs(log_p - reference) <= 1e-13 * abs(reference)


# --- Gaussian balls: rank-deficient covariances -----------------------------------------------

def rotation(seed, n):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def test_ball_with_singular_covariance():
    """cov = Q diag(2, 0, 0) Q^T: v = sqrt(2) g q_1, and the center's part off q_1 (length
    c0) shrinks the radius: P = P(|sqrt(2) g - c1| < sqrt(r^2 - c0^2)), from the normal CDF."""
    q = rotation(1, 3)
    cov = q @ np.diag([2.0, 0.0, 0.0]) @ q.T
    c1, c0 = 0.7, 0.6
    center = c1 * q[:, 0] + c0 * (0.6 * q[:, 1] + 0.8 * q[:, 2])
    radius = 1.1
    s = math.sqrt(radius**2 - c0**2)
    reference = stats.norm.cdf((c1 + s) / math.sqrt(2)) - stats.norm.cdf((c1 - s) / math.sqrt(2))
    log_p, _ = volume.gaussian_ball_log_measure(cov, center, radius)
    assert abs(log_p - math.log(reference)) <= 1e-10
    assert volume.gaussian_ball_log_measure(cov, center, 0.6)[0] == -math.inf  # c0 >= r
    assert volume.gaussian_ball_log_measure(np.zeros((3, 3)), center, 1.0)[0] == 0.0
    assert volume.gaussian_ball_log_measure(np.zeros((3, 3)), center, 0.9)[0] == -math.inf


def test_ball_with_full_covariance_is_the_quadratic_form():
    q = rotation(2, 6)
    cov = q @ np.diag(WEIGHTS) @ q.T
    center = q @ (np.sqrt(WEIGHTS) * OFFSETS)
    log_p, _ = volume.gaussian_ball_log_measure(cov, center, 2.0)
    reference, _ = volume.quadratic_form_log_cdf(WEIGHTS, OFFSETS, 4.0)
    assert abs(log_p - reference) <= 1e-10


# --- the depth-1 linear model -----------------------------------------------------------------

def test_sensing_volume_matches_monte_carlo_of_the_prior():
    """W with iid N(0, 1/5) entries (the Gaussian prior at depth 1, n_cols = 5), train loss from
    problems.losses, against linear_log_volume at eps giving p ~ 0.017."""
    problem = problems.matrix_sensing(seed=0)
    eps = 0.08
    p = math.exp(volume.linear_log_volume(problem, eps))
    assert 0.01 < p < 0.03
    rng = np.random.default_rng(1)
    draws, hits = 1_000_000, 0
    for _ in range(4):
        w = rng.standard_normal((draws // 4, 5, 5)) * math.sqrt(1 / 5)
        train, _ = problems.losses(problem, w)
        hits += int(np.count_nonzero(train < eps))
    assert abs(hits - draws * p) <= MC_SIGMAS * math.sqrt(draws * p * (1 - p))


def test_sensing_volume_with_explicit_variance_is_the_gaussian_ball():
    """sigma2 is used as given; the SVD route agrees with the eigendecomposition route."""
    problem = problems.matrix_sensing(seed=0)
    a, y, m = problem.train_ops, problem.train_labels, len(problem.train_labels)
    for sigma2, eps in ((0.5, 0.3), (0.2, 0.01)):
        log_p = volume.linear_log_volume(problem, eps, sigma2)
        reference, _ = volume.gaussian_ball_log_measure(sigma2 * a @ a.T, y, math.sqrt(m * eps))
        assert abs(log_p - reference) <= 1e-9
    assert volume.linear_log_volume(problem, 0.08, 0.2) == volume.linear_log_volume(problem, 0.08)


@pytest.mark.parametrize("eps", [1e-3, 0.01, 0.05, 0.1])
def test_completion_volume_is_noncentral_chi2(eps):
    """One-hot train rows: A A^T = I, so ||A w - y||^2 / sigma^2 ~ ncx2(m, |y|^2 / sigma^2)."""
    problem = problems.matrix_completion(seed=0)
    m, sigma2 = len(problem.train_labels), 1 / problem.n_cols
    reference = stats.ncx2.logcdf(m * eps / sigma2, m, np.sum(problem.train_labels**2) / sigma2)
    assert abs(volume.linear_log_volume(problem, eps) - reference) <= 1e-10


def test_rank_deficient_operators():
    """Two copies of one operator with labels y1 != y2: the residual is 2 (s - ybar)^2 +
    (y1 - y2)^2 / 2 with s = <a, W> ~ N(0, sigma^2 |a|^2); the second term alone can exceed
    m * eps, and then p = 0."""
    a = np.array([[1.0, 2.0], [0.5, -1.0]])
    y1, y2 = 0.3, 0.9
    problem = problems.from_arrays([a, a], [y1, y2], [np.eye(2)], [0.0])
    sigma = math.sqrt(0.5 * np.sum(a**2))  # sigma2 = 1/2 (two columns)
    eps = 0.3
    half_width = math.sqrt((2 * eps - (y1 - y2) ** 2 / 2) / 2)
    ybar = (y1 + y2) / 2
    reference = (stats.norm.cdf((ybar + half_width) / sigma)
                 - stats.norm.cdf((ybar - half_width) / sigma))
    assert abs(volume.linear_log_volume(problem, eps) - math.log(reference)) <= 1e-10
    assert volume.linear_log_volume(problem, 0.9 * (y1 - y2) ** 2 / 4) == -math.inf


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda: volume.quadratic_form_log_cdf([1.0, 2.0], [0.0], 1.0), "same shape"),
    (lambda: volume.quadratic_form_log_cdf([1.0, 0.0], [0.0, 0.0], 1.0), "positive"),
    (lambda: volume.quadratic_form_log_cdf([1.0, -1.0], [0.0, 0.0], 1.0), "positive"),
    (lambda: volume.quadratic_form_log_cdf([], [], 1.0), "non-empty"),
    (lambda: volume.quadratic_form_log_cdf([[1.0]], [[0.0]], 1.0), "1-D"),
    (lambda: volume.quadratic_form_log_cdf([1.0, np.nan], [0.0, 0.0], 1.0), "NaN"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [np.inf], 1.0), "NaN or inf"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], 0.0), "t must be"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], -1.0), "t must be"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], math.inf), "t must be"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], "1"), "t must be"),
    (lambda: volume.quadratic_form_log_cdf([1.0, 2.0], [0.0, 0.0], 1.0, beta=1.5), "beta"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], 1.0, rtol=0.0), "rtol"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [0.0], 1.0, max_terms=0), "max_terms"),
    (lambda: volume.gaussian_ball_log_measure(np.eye(2), [0.0, 0.0, 0.0], 1.0), "center"),
    (lambda: volume.gaussian_ball_log_measure(np.ones((2, 3)), [0.0, 0.0], 1.0), "square"),
    (lambda: volume.gaussian_ball_log_measure([[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], 1.0),
     "symmetric"),
    (lambda: volume.gaussian_ball_log_measure(np.diag([1.0, -1.0]), [0.0, 0.0], 1.0),
     "semidefinite"),
    (lambda: volume.gaussian_ball_log_measure(np.eye(2), [0.0, 0.0], 0.0), "radius"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), 0.0), "eps"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), math.nan), "eps"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), math.inf), "eps"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), 0.1, -1.0), "sigma2"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), True), "eps"),
    (lambda: volume.linear_log_volume(problems.matrix_sensing(seed=0), [0.1]), "eps"),
    (lambda: volume.linear_log_volume(
        problems.matrix_sensing(seed=0)._replace(train_labels=np.zeros(3)), 0.1), "train_labels"),
    (lambda: volume.linear_log_volume(
        problems.matrix_sensing(seed=0)._replace(n_cols=4), 0.1), "train_ops"),
    (lambda: volume.quadratic_form_log_cdf([1.0], [1j], 1.0), "real"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_too_few_terms_raise():
    """Ill-conditioned weights with t far above min(weights): the series needs many terms."""
    with pytest.raises(ValueError, match="did not reach rtol"):
        volume.quadratic_form_log_cdf([1e-3, 1.0], [0.0, 0.0], 2.0, max_terms=200)
