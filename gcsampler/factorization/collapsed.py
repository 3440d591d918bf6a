"""Exact collapsed samplers for the built-in Gaussian prior.

Each function maps one draw's key to the end-to-end matrix W (``*_matrix``) or to
the draw's full weights (``*_layers``). W has exactly the distribution of
``end_to_end(model, sample_layers(gaussian(), model, key))`` but costs fewer random
numbers; the layers are exactly prior-distributed and multiply to the same W.

last_layer (any activation, depth >= 2; saves draws when width k > n_rows)
  Draw W_1 .. W_{d-1} as the prior does and let H = s(... s(W_1) ...) (n_rows, k)
  be the input of the last layer. Given H the columns of W = H W_d are iid
  N(0, H H^T / n_cols), so W = L Z / sqrt(n_cols) with H = L Q^T a Householder
  LQ decomposition (L = R^T of a QR of H^T) and Z standard normal: n_rows * n_cols
  numbers instead of k * n_cols. Regeneration: with Q_full the k x k orthogonal
  matrix of the LQ (Q its first n_rows columns), W_d = Q_full [Z; E] / sqrt(n_cols)
  with E fresh standard normal. Given H this is N(0, I / n_cols) (an orthogonal map
  of a standard normal matrix) and H W_d = L Z / sqrt(n_cols), so (W_1, ..., W_d)
  has the prior's joint law and the product W. It is the conditional draw
  W_d = H^+ W + (I - H^+ H) xi / sqrt(n_cols) written without a pseudo-inverse,
  so it also holds when H is singular.

wishart (linear activation, depth >= 2, k >= n_rows; cost independent of k)
  Let P_j = W_1 ... W_j (n_rows, k). By Bartlett's decomposition (Bartlett 1933),
  a standard normal (n_rows, k) matrix is G = T U^T, where T is lower triangular
  with T_ii^2 ~ chi^2(k - i + 1) (i = 1..n_rows), T_ij ~ N(0, 1) (i > j), and U is
  an independent Haar-random k x n_rows matrix with orthonormal columns. With
  L_1 = T_1 / sqrt(k), P_j = L_j U_j^T; given P_{j-1}, P_j = P_{j-1} W_j has iid
  N(0, L_{j-1} L_{j-1}^T / k) columns, i.e. P_j =_d L_{j-1} G_j / sqrt(k), so
  L_j = L_{j-1} T_j / sqrt(k) with a fresh T_j, and W = L_{d-1} Z / sqrt(n_cols).
  Only (d - 1) Bartlett factors and Z are drawn. Regeneration draws each U_j from
  the LQ of a Gaussian (positive diagonal, so U_j is exactly Haar) and, with
  U_full,j the k x k orthogonal matrix of that LQ, sets W_1 = T_1 U_1^T / sqrt(k),
  W_j = U_full,{j-1} [T_j U_j^T; E_j] / sqrt(k), W_d = U_full,{d-1} [Z; E_d] / sqrt(n_cols)
  (E_j fresh standard normal). As for last_layer, each W_j is N(0, I / c) given the
  earlier layers, and P_{j-1} W_j = P_j.

Key derivation (deterministic; ``key`` is the draw's key):
  fold_in(key, l)                      layer l's randomness, l = 0 .. d-1: the prior's
                                       W_{l+1} (last_layer, l < d-1), the Bartlett
                                       factor T_{l+1} (wishart, l < d-1), Z (l = d-1);
  fold_in(fold_in(key, HAAR_TAG), l)   Haar factor U_{l+1} (wishart regeneration);
  fold_in(fold_in(key, NOISE_TAG), l)  fresh normals E of layer l (regeneration).
With the same key, last_layer's W_1 .. W_{d-1} are bitwise the direct draw's.

All computations are float32; matrix products use HIGHEST precision (no TF32).
"""

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.factorization import priors

HAAR_TAG = 2**32 - 2
NOISE_TAG = 2**32 - 1

_F32 = jnp.float32
_DEPENDENT_ROW = 16     # rows with residual <= 16 sqrt(k) eps |row| count as dependent (_lq)
_PREFIX_PRIOR = priors.gaussian()


def _mm(a, b):
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _check(model, name, linear):
    if model.depth < 2:
        raise ValueError(f"{name} needs depth >= 2, got depth {model.depth}")
    if linear and not model.is_linear:
        raise ValueError(f"{name} needs the linear activation, got {model.activation_name!r}")
    if linear and model.width < model.n_rows:
        raise ValueError(f"{name} needs width >= n_rows, got width {model.width} "
                         f"< n_rows {model.n_rows}")


# --- Householder LQ -------------------------------------------------------------

def _lq(h):
    """Householder LQ of ``h`` (n, k): returns (l, reflectors).

    ``l`` is (n, s) lower triangular with s = min(n, k), l_jj >= 0, and
    ``h = l Q_full[:, :s]^T`` (h^T = Q_full[:, :s] l^T is a QR of h^T), where
    Q_full = H_0 ... H_{s-1} is the k x k orthogonal product of the reflectors
    H_j = I - tau_j v_j v_j^T. O(k n^2), backward stable (l is exact for a matrix
    within float32 rounding of ``h``), and no division by a pivot:

    - l_jj >= 0 (LAPACK's dlarfgp), so l is the Cholesky factor of h h^T, a
      continuous function of h: separately compiled calls agree up to rounding;
    - a row whose residual (its distance to the span of the earlier rows) is below
      16 sqrt(k) eps times its norm is taken as dependent: l_jj = 0 and H_j = I.
      Exactly dependent rows (relu zeroes and repeats rows) leave rounding residuals
      of at most ~8 eps |row| (measured up to k = 10^4), which would otherwise set
      the reflector's direction at random; genuine residuals that small have
      probability ~0 and are dropped consistently by matrix and layers.
    """
    n, k = h.shape
    idx = jnp.arange(k)
    tol = _DEPENDENT_ROW * k**0.5 * jnp.finfo(_F32).eps * jnp.sqrt(jnp.sum(h * h, axis=1))
    columns, reflectors = [], []
    for j in range(min(n, k)):                               # h holds rows j .. n-1
        alpha = h[0, j]
        tail = jnp.where(idx > j, h[0], 0.0)
        sigma = jnp.sum(tail * tail)
        norm = jnp.sqrt(alpha * alpha + sigma)
        independent = norm > tol[j]
        # v_j = alpha - norm, computed without cancellation when alpha > 0.
        head = jnp.where(alpha > 0, -sigma / jnp.where(alpha > 0, alpha + norm, 1.0),
                         alpha - norm)
        vv = head * head + sigma
        tau = jnp.where(independent & (vv > 0), 2.0 / jnp.where(vv > 0, vv, 1.0), 0.0)
        v = tail + jnp.where(idx == j, head, 0.0)
        h = h[1:] - (tau * jnp.sum(h[1:] * v, axis=1))[:, None] * v
        beta = jnp.where(independent, norm, 0.0)             # l_jj
        columns.append(jnp.concatenate([jnp.zeros(j, h.dtype), beta[None], h[:, j]]))
        reflectors.append((v, tau))
    return jnp.stack(columns, axis=1), reflectors


def _apply_q(reflectors, x):
    """Q_full @ x for the reflectors of :func:`_lq` and x of shape (k, c)."""
    for v, tau in reversed(reflectors):
        x = x - tau * jnp.outer(v, _mm(v, x))
    return x


def _fill(reflectors, top, key, scale):
    """Q_full @ [top; E] * scale with E (k - s, c) fresh standard normal."""
    k = reflectors[0][0].shape[0]
    extra = jax.random.normal(key, (k - top.shape[0], top.shape[1]), _F32)
    return _apply_q(reflectors, jnp.concatenate([top, extra])) * scale


# --- last_layer -----------------------------------------------------------------

def _prefix(model, key):
    """W_1 .. W_{d-1} drawn exactly as the Gaussian prior does, and H = s(...s(W_1)...)."""
    layers = [_PREFIX_PRIOR.sample_layer(jax.random.fold_in(key, layer), shape, _F32)
              for layer, shape in enumerate(model.layer_shapes[:-1])]
    h = layers[0]
    for w in layers[1:]:
        h = _mm(model.activation(h), w)
    return layers, model.activation(h)


def _last_layer(model, key, h=None):
    """Pieces of a last_layer draw; ``h`` (the last layer's input) is recomputed if not given."""
    _check(model, "last_layer", linear=False)
    layers = None
    if h is None:
        layers, h = _prefix(model, key)
    # Square root of H H^T: the L of a Householder LQ of H (= R^T of a QR of H^T),
    # not a Cholesky of the Gram matrix. It divides by no pivot, so it is exact when
    # H H^T is singular (relu can zero rows of H), and it is backward stable, so W
    # stays in the row space of H up to float32 rounding and regeneration
    # reproduces it (a Gram matrix would blur that space at sqrt(eps) relative).
    root, reflectors = _lq(h)
    z = jax.random.normal(jax.random.fold_in(key, model.depth - 1),
                          (root.shape[1], model.n_cols), _F32)
    return layers, root, reflectors, z


def last_layer_matrix(model, key):
    """End-to-end (n_rows, n_cols) matrix of one draw, collapsing the last layer.

    The hidden layers are drawn one at a time (:func:`priors.penultimate`), so
    deep, wide networks fit in memory.
    """
    h = model.activation(priors.penultimate(_PREFIX_PRIOR, model, key))
    _, _, _, z = _last_layer(model, key, h)
    return collapse_last_layer(model, h, z)


def collapse_last_layer(model, h, z):
    """W = L Z / sqrt(n_cols), with L the LQ factor of the last layer's input ``h``
    (n_rows, k) and ``z`` (min(n_rows, k), n_cols) standard normal: given ``h``, W has
    the law of ``h @ W_d`` under the Gaussian prior (see the module docstring)."""
    return _mm(last_layer_root(h), z) * _F32(model.n_cols ** -0.5)


def last_layer_root(h):
    """The (n_rows, min(n_rows, k)) lower-triangular L with L L^T = h h^T (:func:`_lq`)."""
    return _lq(h)[0]


def last_layer_layers(model, key):
    """Full weights (W_1, ..., W_d) of the draw :func:`last_layer_matrix` makes."""
    layers, _, reflectors, z = _last_layer(model, key)
    noise_key = jax.random.fold_in(jax.random.fold_in(key, NOISE_TAG), model.depth - 1)
    last = _fill(reflectors, z, noise_key, _F32(model.n_cols ** -0.5))
    return tuple(layers) + (last,)


# --- wishart --------------------------------------------------------------------

def _bartlett(key, dof, size):
    """Lower-triangular T with T T^T ~ Wishart(dof, I_size) (Bartlett); dof >= size.

    T_ii = sqrt(chi^2(dof - i)) for i = 0 .. size-1 (jax.random.chisquare: exact
    Marsaglia-Tsang gamma rejection sampling, vmap-safe), below-diagonal N(0, 1).
    """
    df = dof - jnp.arange(size, dtype=_F32)
    diag = jnp.sqrt(jax.random.chisquare(jax.random.fold_in(key, 0), df, (size,), _F32))
    rows, cols = np.tril_indices(size, -1)
    below = jax.random.normal(jax.random.fold_in(key, 1), (rows.size,), _F32)
    return jnp.diag(diag).at[rows, cols].set(below)


def _wishart(model, key):
    _check(model, "wishart", linear=True)
    k = model.width
    factors = [_bartlett(jax.random.fold_in(key, layer), k, model.n_rows)
               for layer in range(model.depth - 1)]
    z = jax.random.normal(jax.random.fold_in(key, model.depth - 1),
                          (model.n_rows, model.n_cols), _F32)
    return factors, z


def wishart_matrix(model, key):
    """End-to-end (n_rows, n_cols) matrix of one linear draw, from Bartlett factors."""
    factors, z = _wishart(model, key)
    root = factors[0] * _F32(model.width ** -0.5)
    for t in factors[1:]:
        root = _mm(root, t) * _F32(model.width ** -0.5)
    return _mm(root, z) * _F32(model.n_cols ** -0.5)


def _haar(key, k, size):
    """Reflectors of the LQ of a Gaussian (size, k): U = Q_full[:, :size] is Haar.

    G = L U^T with L's diagonal positive (the sign fix that makes U exactly Haar on
    the Stiefel manifold); a Gaussian G has independent rows almost surely.
    """
    return _lq(jax.random.normal(key, (size, k), _F32))[1]


def wishart_layers(model, key):
    """Full weights (W_1, ..., W_d) of the draw :func:`wishart_matrix` makes."""
    factors, z = _wishart(model, key)
    k, n = model.width, model.n_rows
    haar_key = jax.random.fold_in(key, HAAR_TAG)
    noise_key = jax.random.fold_in(key, NOISE_TAG)
    scale = _F32(k ** -0.5)
    layers, prev = [], None
    for layer, t in enumerate(factors):
        reflectors = _haar(jax.random.fold_in(haar_key, layer), k, n)
        gaussian = _mm(t, _apply_q(reflectors, jnp.eye(k, n, dtype=_F32)).T)  # T_j U_j^T
        if prev is None:
            layers.append(gaussian * scale)
        else:
            layers.append(_fill(prev, gaussian, jax.random.fold_in(noise_key, layer), scale))
        prev = reflectors
    layers.append(_fill(prev, z, jax.random.fold_in(noise_key, model.depth - 1),
                        _F32(model.n_cols ** -0.5)))
    return tuple(layers)
