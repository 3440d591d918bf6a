"""Exact prior volume of the depth-1 linear model: p = P(train loss < eps) under the Gaussian prior.

At depth 1 the end-to-end matrix W is drawn itself, with iid N(0, sigma^2) entries (sigma^2 =
1/n_cols for the built-in Gaussian prior). With A the (m, D) train operators and y the labels,
A w ~ N(0, sigma^2 A A^T), so p is the Gaussian measure of the ball ||A w - y||^2 < m * eps in
R^m. Diagonalizing the covariance turns it into the lower tail of a positive definite quadratic
form in noncentral normals, P(sum_j lambda_j (g_j + delta_j)^2 < t), which is computed here by
Ruben's (1962) series of central chi-square CDFs (the representation behind Farebrother 1984,
Applied Statistics algorithm AS 204). Everything is in log space, so p far below float64's
range (1e-300 and less) still has a finite, accurate log: this is the independent reference a
rare-event estimator of p is checked against.

Ruben's series. For 0 < beta <= min lambda_j, with gamma_j = 1 - beta / lambda_j in [0, 1) and
c_j = delta_j^2 beta / (2 lambda_j), the moment generating function of Q = sum_j lambda_j
(g_j + delta_j)^2 equals that of beta * chi2_{n + 2K} with K a random index of probability
generating function

    G(v) = sum_k a_k v^k = a_0 prod_j (1 - gamma_j v)^(-1/2) exp(c_j v / (1 - gamma_j v)),
    a_0 = prod_j sqrt(beta / lambda_j) exp(-delta_j^2 / 2),

(substitute v = 1 / (1 - 2 beta s) in E exp(s Q)). So a_k >= 0, sum_k a_k = G(1) = 1 and
P(Q < t) = sum_k a_k P(chi2_{n+2k} < t / beta). Differentiating log G gives the recursion

    k a_k = sum_{r<k} a_r h_{k-1-r},   h_i = sum_j (gamma_j^(i+1) / 2 + (i + 1) c_j gamma_j^i),

which is run here in O(n) per term through the running sums A_j(k) = sum_{r<k} a_r
gamma_j^(k-1-r) and B_j(k) = sum_{r<k} a_r (k - r) gamma_j^(k-1-r), since sum_r a_r h_{k-1-r} =
sum_j (gamma_j A_j(k) / 2 + c_j B_j(k)), A_j(k+1) = gamma_j A_j(k) + a_k and B_j(k+1) =
gamma_j B_j(k) + A_j(k+1). All terms are positive, so the log-space recursion never cancels.

Truncation. The chi-square CDF decreases in the degrees of freedom, so keeping the terms
k <= K leaves out sum_{k>K} a_k F_{n+2k}(x) <= eps_K F_{n+2K+2}(x), eps_K = sum_{k>K} a_k.
Rather than 1 - sum_{k<=K} a_k (which cancels), eps_K is bounded by the Chernoff bound
eps_K <= min_{1 < v < 1/max gamma} G(v) / v^(K+1), evaluated from the closed form of G; log G(e^u)
is convex in u (a log-sum-exp), so a golden-section search finds the minimum. The series
stops once that bound is below ``rtol`` times the partial sum.
"""

import math

import numpy as np
from scipy import special

# Below exp(-575) (about 1e-250) the regularized incomplete gamma is taken from its log-space
# series instead of log(scipy.special.gammainc), which underflows near 1e-308.
_LOG_GAMMAINC_SERIES_BELOW = -575.0
_SERIES_MAX_TERMS = 100_000
_GOLDEN_ITERATIONS = 100


def quadratic_form_log_cdf(weights, offsets, t, *, beta=None, rtol=1e-14, max_terms=100_000):
    """log P(sum_j weights_j (g_j + offsets_j)^2 < t) for iid standard normal g, by Ruben's series.

    Ruben (1962) writes the lower tail of a positive definite quadratic form in noncentral
    normals as a mixture of central chi-square CDFs, P(chi2_{n+2k} < t / beta) with mixing
    weights a_k from a recursion (Farebrother 1984, AS 204); see the module docstring. Used
    as an exact reference for rare-event estimates, so it works in log space throughout.

    Args:
      weights: (n,) positive finite weights lambda_j.
      offsets: (n,) finite offsets delta_j (their signs do not matter).
      t: positive finite threshold.
      beta: series scale, 0 < beta <= min(weights); default min(weights), which makes the
        mixing weights decay fastest. The answer does not depend on it (a useful check).
      rtol: the series is summed until the certified truncation bound is below this.
      max_terms: most series terms before giving up.

    Returns:
      (log_p, bound): log of the truncated sum p_hat, and a certified bound on the relative
      truncation error: p_hat <= p <= p_hat * (1 + bound) (neglected terms are positive). The
      bound does not include float64 rounding, which is about 1e-16 * |log of the terms| in
      relative terms (1e-13 at p ~ 1e-300).

    Raises:
      ValueError: on invalid inputs, or if ``max_terms`` terms do not reach ``rtol``. The
        chi-square CDFs vanish beyond k ~ t / (2 beta), so the series needs at most about that
        many terms (plus the spread of the a_k); fewer when the weights are well conditioned.
    """
    weights = _vector("weights", weights)
    offsets = _vector("offsets", offsets)
    if weights.shape != offsets.shape:
        raise ValueError(f"weights and offsets must have the same shape, got {weights.shape} "
                         f"and {offsets.shape}")
    if not np.all(weights > 0):
        raise ValueError("weights must be positive (use gaussian_ball_log_measure for a "
                         "singular covariance)")
    t = _positive_finite("t", t)
    if beta is not None:
        beta = _positive_finite("beta", beta)
        if beta > weights.min():
            raise ValueError(f"beta must be at most min(weights) = {weights.min()!r}, got {beta!r}")
    rtol = _positive_finite("rtol", rtol)
    max_terms = _positive_int("max_terms", max_terms)
    return _ruben_log_cdf(weights, offsets, t, beta, rtol, max_terms)


def gaussian_ball_log_measure(cov, center, radius, *, rtol=1e-14, max_terms=100_000):
    """log P(||v - center|| < radius) for v ~ N(0, cov), cov positive semidefinite.

    The probability that a Gaussian vector lands in a ball: in the eigenbasis of cov it is the
    lower tail of a quadratic form in noncentral normals (:func:`quadratic_form_log_cdf`).
    Eigenvalues below ``dim * machine eps * max eigenvalue`` are taken as zero: along those
    directions v is 0, so the center's component there is a fixed offset that shrinks the
    squared radius; if it alone reaches the radius, the measure is 0 and -inf is returned.

    Raises:
      ValueError: on a non-square, non-symmetric, non-finite or indefinite cov, a center of
        the wrong shape, or a radius that is not positive and finite.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(f"cov must be a non-empty square matrix, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("cov contains NaN or inf")
    dim = cov.shape[0]
    scale = float(np.abs(cov).max())
    if np.abs(cov - cov.T).max() > 1e-12 * scale:
        raise ValueError("cov must be symmetric")
    center = _vector("center", center)
    if center.shape != (dim,):
        raise ValueError(f"center must have shape ({dim},) to match cov, got {center.shape}")
    radius = _positive_finite("radius", radius)
    rtol = _positive_finite("rtol", rtol)
    max_terms = _positive_int("max_terms", max_terms)
    eigvals, eigvecs = np.linalg.eigh(0.5 * (cov + cov.T))
    tol = dim * np.finfo(np.float64).eps * float(np.abs(eigvals).max())
    if eigvals.min() < -tol:
        raise ValueError(f"cov must be positive semidefinite, its smallest eigenvalue is "
                         f"{eigvals.min()!r}")
    coords = eigvecs.T @ center
    keep = eigvals > tol
    return _ball(eigvals[keep], coords[keep], coords[~keep], radius**2, rtol, max_terms)


def linear_log_volume(problem, eps, sigma2=None, *, rtol=1e-14, max_terms=100_000):
    """log P(train loss < eps) for a depth-1 model with iid N(0, sigma2) entries (exact).

    The train loss of the flattened matrix w is (1/m) ||A w - y||^2 with A = problem.train_ops,
    so p is the N(0, sigma2 A A^T) measure of the ball of radius sqrt(m eps) around y
    (:func:`gaussian_ball_log_measure`); here A A^T is diagonalized through the SVD of A, which
    also handles rank-deficient operators. ``sigma2`` defaults to 1 / problem.n_cols, the
    built-in Gaussian prior's variance at depth 1 (:func:`gcsampler.factorization.priors.gaussian`).
    """
    ops = np.asarray(problem.train_ops, dtype=np.float64)
    labels = np.asarray(problem.train_labels, dtype=np.float64)
    if ops.ndim != 2 or ops.shape[0] == 0 or ops.shape[1] != problem.n_rows * problem.n_cols:
        raise ValueError(f"problem.train_ops must have shape (m, {problem.n_rows * problem.n_cols})"
                         f" with m >= 1, got {ops.shape}")
    if labels.shape != (ops.shape[0],):
        raise ValueError(f"problem.train_labels must have shape ({ops.shape[0]},), "
                         f"got {labels.shape}")
    if not (np.all(np.isfinite(ops)) and np.all(np.isfinite(labels))):
        raise ValueError("problem.train_ops or problem.train_labels contains NaN or inf")
    eps = _positive_finite("eps", eps)
    sigma2 = 1.0 / problem.n_cols if sigma2 is None else _positive_finite("sigma2", sigma2)
    rtol = _positive_finite("rtol", rtol)
    max_terms = _positive_int("max_terms", max_terms)
    m = ops.shape[0]
    u, s, _ = np.linalg.svd(ops, full_matrices=True)
    tol = max(ops.shape) * np.finfo(np.float64).eps * (s.max() if s.size else 0.0)
    rank = int(np.sum(s > tol))
    coords = u.T @ labels
    log_p, _ = _ball(sigma2 * s[:rank] ** 2, coords[:rank], coords[rank:], m * eps, rtol,
                     max_terms)
    return log_p


def _ball(eigvals, coords, null_coords, radius_sq, rtol, max_terms):
    """(log P, bound) for sum_j eigvals_j (g_j - coords_j / sqrt(eigvals_j))^2 + |null|^2 < r^2."""
    t = radius_sq - float(np.sum(null_coords**2))
    if not t > 0:
        return -math.inf, 0.0
    if eigvals.size == 0:  # v is 0: inside the ball (log 1) since |center| < radius
        return 0.0, 0.0
    return _ruben_log_cdf(eigvals, coords / np.sqrt(eigvals), t, None, rtol, max_terms)


def _ruben_log_cdf(weights, offsets, t, beta, rtol, max_terms):
    """(log p_hat, relative truncation bound) of Ruben's series; inputs already validated."""
    if beta is None:
        beta = float(weights.min())
    n = weights.size
    x = t / beta
    series = _RubenWeights(weights, offsets, beta)
    if x == 0.0 or series.log_a0 == -math.inf:  # p below float64's log range
        return -math.inf, 0.0
    log_rtol = math.log(rtol)
    log_a = [series.log_a0]
    log_p = -math.inf
    done = 0  # terms already folded into log_p
    chunk = 16
    while True:
        while len(log_a) < min(done + chunk, max_terms):
            log_a.append(series.next())
        k = np.arange(done, len(log_a))
        log_f = _log_chi2_cdf(n + 2.0 * k, x)
        log_p = np.logaddexp(log_p, _logsumexp(np.asarray(log_a[done:]) + log_f))
        done = len(log_a)
        log_bound = float(series.log_tail_bound(done - 1)
                          + _log_chi2_cdf(n + 2.0 * done, x)[0] - log_p)
        if log_bound <= log_rtol:
            return float(log_p), float(math.exp(log_bound))
        if done >= max_terms:
            raise ValueError(f"Ruben's series did not reach rtol={rtol:g} in {max_terms} terms "
                             f"(bound {math.exp(min(log_bound, 700.0)):.3g}); t / beta = {x:.3g} "
                             f"may need about {x / 2:.3g}: raise max_terms")
        chunk = min(max(16, done // 2), 4096)


class _RubenWeights:
    """The mixing weights log a_0, log a_1, ... of Ruben's series, one per ``next()`` call."""

    def __init__(self, weights, offsets, beta):
        ratio = beta / weights  # in (0, 1]
        self.gamma = 1.0 - ratio
        self.c = 0.5 * offsets**2 * ratio
        with np.errstate(divide="ignore"):
            self.log_gamma = np.log(self.gamma)
            self.log_terms = np.concatenate([np.log(0.5 * self.gamma), np.log(self.c)])
        self.log_a0 = float(0.5 * np.sum(np.log(ratio)) - 0.5 * np.sum(offsets**2))
        self.log_sums = np.full(2 * weights.size, self.log_a0)  # log A_j(k), log B_j(k)
        self.k = 0
        self.n = weights.size

    def next(self):
        """log a_{k+1} from the running sums, then advance them."""
        self.k += 1
        log_a = _logsumexp(self.log_terms + self.log_sums) - math.log(self.k)
        n = self.n
        log_a_sum = np.logaddexp(self.log_gamma + self.log_sums[:n], log_a)
        self.log_sums[n:] = np.logaddexp(self.log_gamma + self.log_sums[n:], log_a_sum)
        self.log_sums[:n] = log_a_sum
        return log_a

    def log_tail_bound(self, last):
        """Certified upper bound on log sum_{k > last} a_k: min_{v > 1} log G(v) - (last+1) log v.

        Any v in (1, 1 / max gamma) gives a bound (Markov: a_k <= G(v) / v^k); the golden-section
        search over u = log v only tightens it, and u = 0 caps it at log 1.
        """
        gamma_max = float(self.gamma.max())
        upper = -math.log(gamma_max) if gamma_max > 0 else 690.0

        def objective(u):
            v = math.exp(u)
            rest = 1.0 - self.gamma * v
            if not np.all(rest > 0):
                return math.inf
            with np.errstate(over="ignore"):
                log_g = self.log_a0 + float(np.sum(-0.5 * np.log(rest) + self.c * v / rest))
            return log_g - (last + 1) * u if math.isfinite(log_g) else math.inf

        lo, hi = 0.0, min(upper, 690.0)
        golden = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        fa, fb = objective(a), objective(b)
        best = min(0.0, fa, fb)  # u = 0 gives log G(1) = 0: the tail mass is at most 1
        for _ in range(_GOLDEN_ITERATIONS):
            if fa <= fb:
                hi, b, fb = b, a, fa
                a = hi - golden * (hi - lo)
                fa = objective(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + golden * (hi - lo)
                fb = objective(b)
            best = min(best, fa, fb)
        return best


def _log_chi2_cdf(dof, x):
    """log P(chi2_dof < x) for an array of dof >= 1 and a scalar x > 0, without underflow."""
    return _log_gammainc(0.5 * np.asarray(dof, dtype=np.float64), 0.5 * x)


def _log_gammainc(a, z):
    """log of the regularized lower incomplete gamma P(a, z), a >= 1/2, z > 0 (array a)."""
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    with np.errstate(divide="ignore"):
        out = np.log(special.gammainc(a, z))
    small = ~(out > _LOG_GAMMAINC_SERIES_BELOW)
    if np.any(small):
        out[small] = _log_gammainc_series(a[small], z)
    return out


def _log_gammainc_series(a, z):
    """log P(a, z) = a log z - z - log Gamma(a+1) + log sum_i z^i / ((a+1) ... (a+i)).

    Used where P is below ~1e-250, which needs z < a: the terms then shrink geometrically.
    """
    term = np.ones_like(a)
    total = np.ones_like(a)
    for i in range(1, _SERIES_MAX_TERMS):
        term = term * (z / (a + i))
        total = total + term
        if np.all(term <= 1e-17 * total):
            break
    else:
        raise ValueError(f"incomplete gamma series did not converge at z={z!r}")
    return a * math.log(z) - z - special.gammaln(a + 1.0) + np.log(total)


def _logsumexp(values):
    top = np.max(values)
    if top == -math.inf:
        return -math.inf
    return float(top + math.log(np.sum(np.exp(values - top))))


def _vector(name, value):
    if np.iscomplexobj(value):
        raise ValueError(f"{name} must be an array of real numbers, got complex values")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _positive_finite(name, value):
    """float(value) for a real scalar (Python, NumPy or 0-d array) that is positive and finite."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
