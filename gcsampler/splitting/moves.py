"""Move kernels of the splitting sampler: Markov steps that leave N(0, I) restricted to
a level set {z : train_loss(z) < level} invariant.

A move is a :class:`Move`: ``step(key, z, train, gen, level, evaluate, param)`` moves
one particle (``evaluate(z) -> (train, gen)`` gives a point's losses) and returns
``(z, train, gen, MoveInfo)``; ``param`` is a runtime number the move may use (pCN's
step size), retuned between levels by ``adapt(param, acceptance)``. Only ``train <
level`` is ever asked of a proposal, so the moves are exact for any activation,
depth, normalization or prior with Gaussian coordinates (:mod:`gcsampler.factorization.latent`).
A non-finite loss counts as outside.

- ``ess``: elliptical slice sampling (Murray, Adams & MacKay 2010) with the level
  set's indicator as likelihood: proposals on the ellipse ``z cos t + nu sin t``
  through z and a fresh normal nu, the angle bracket shrunk towards t = 0 until a
  proposal falls inside. Always moves, with no step size to tune. Under ``vmap``
  every lane waits for the slowest, so proposals are capped at ``max_proposals``:
  a particle that has found no point inside by then stays where it is. The cap
  keeps the kernel exact: Murray et al.'s reversibility argument pairs each
  shrinking sequence from z to z' with one of the same length from z' to z, so
  the transitions of at most ``max_proposals`` proposals are reversible on their
  own, and staying put with the remaining probability is too.
  ``elliptical_slice(chain=K)`` makes K such moves per step, each lane going on to
  its next move as soon as its current one ends, so lanes wait for the slowest only
  once per K moves (a sum of K proposal counts varies less, relative to its mean,
  than one count). Each move is the one above, so the chain is exact too.
- ``pcn``: preconditioned Crank-Nicolson (Cotter et al. 2013), ``sqrt(1 - b^2) z +
  b nu``, accepted iff inside: a Metropolis step whose proposal is reversible for
  N(0, I). One proposal per move keeps lanes in lockstep; ``b`` is retuned between
  levels towards an acceptance of ``PCN_TARGET``.
- a task may add moves of its own on the same :class:`Move` interface (the
  factorizations' moves along fibres of the train predictions,
  :mod:`gcsampler.factorization.fibers`).

A new move goes here: a function returning a :class:`Move`, registered in :data:`MOVES`.
"""

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gcsampler.core.registry import Registry

DEFAULT_MAX_PROPOSALS = 64
PCN_TARGET = 0.25
PCN_INITIAL = 0.5


class MoveInfo(NamedTuple):
    """What one step (``Move.chain`` moves) of one particle did."""

    moved: jax.Array      # () bool or int32: moves that took the particle to a new point
    proposals: jax.Array  # () int32: loss evaluations the step made
    capped: jax.Array = 0  # () int32: moves that stayed put at their proposal cap


class Move(NamedTuple):
    """A move kernel (see the module docstring).

    Attributes:
      name: label for reports.
      step: ``(key, z, train, gen, level, evaluate, param) -> (z, train, gen, MoveInfo)``.
      initial_param: the runtime parameter of the first level.
      adapt: ``(param, acceptance) -> param`` between levels (acceptance: the
        fraction of the level's moves that moved).
      chain: moves one step makes.
    """

    name: str
    step: Callable
    initial_param: float
    adapt: Callable
    chain: int = 1


def _keep(param, acceptance):
    del acceptance
    return param


def elliptical_slice(max_proposals=DEFAULT_MAX_PROPOSALS, chain=1):
    """Elliptical slice moves on the level set, at most ``max_proposals`` proposals each;
    a step makes ``chain`` of them back to back (see the module docstring)."""
    if not (isinstance(max_proposals, int) and max_proposals >= 1):
        raise ValueError(f"max_proposals must be a positive integer, got {max_proposals!r}")
    if not (isinstance(chain, int) and chain >= 1):
        raise ValueError(f"chain must be a positive integer, got {chain!r}")

    def step(key, z, train, gen, level, evaluate, param):
        del param
        key_nu, key_angle = jax.random.split(key)
        nus = jax.random.normal(key_nu, (chain,) + z.shape, z.dtype)

        def angle(move, count, lo, hi):  # one key per proposal of the chain
            key = jax.random.fold_in(key_angle, move * max_proposals + count)
            return jax.random.uniform(key, (), z.dtype, lo, hi)

        def bracket(move):
            theta = angle(move, 0, 0.0, 2 * math.pi)
            return theta, theta - 2 * math.pi, theta

        def propose(carry):
            move, count, theta, lo, hi, z, train, gen, moved, proposals = carry
            candidate = z * jnp.cos(theta) + nus[move] * jnp.sin(theta)
            t, g = evaluate(candidate)
            inside = t < level
            count = count + 1
            lo = jnp.where(~inside & (theta < 0), theta, lo)
            hi = jnp.where(~inside & (theta >= 0), theta, hi)
            ended = inside | (count >= max_proposals)
            # the next move's bracket (one move: the loop ends instead, so none is drawn)
            next_theta, next_lo, next_hi = (bracket(jnp.minimum(move + 1, chain - 1))
                                            if chain > 1 else (theta, lo, hi))
            return (jnp.where(ended, move + 1, move), jnp.where(ended, 0, count),
                    jnp.where(ended, next_theta, angle(move, count, lo, hi)),
                    jnp.where(ended, next_lo, lo), jnp.where(ended, next_hi, hi),
                    jnp.where(inside, candidate, z), jnp.where(inside, t, train),
                    jnp.where(inside, g, gen), moved + inside, proposals + 1)

        start = (jnp.int32(0), jnp.int32(0), *bracket(0), z, train, gen, jnp.int32(0),
                 jnp.int32(0))
        out = jax.lax.while_loop(lambda carry: carry[0] < chain, propose, start)
        z, train, gen, moved, proposals = out[5:]
        return z, train, gen, MoveInfo(moved, proposals, chain - moved)

    return Move("ess" if chain == 1 else f"ess{chain}", step, 0.0, _keep, chain)


def pcn(initial_step=PCN_INITIAL, target=PCN_TARGET):
    """Preconditioned Crank-Nicolson moves, step size retuned towards ``target`` acceptance."""
    if not 0 < initial_step <= 1:
        raise ValueError(f"initial_step must be in (0, 1], got {initial_step!r}")

    def step(key, z, train, gen, level, evaluate, param):
        nu = jax.random.normal(key, z.shape, z.dtype)
        b = jnp.asarray(param, z.dtype)
        return accept_inside(jnp.sqrt(1 - b * b) * z + b * nu, z, train, gen, level, evaluate)

    return Move("pcn", step, float(initial_step), towards(target))


def accept_inside(candidate, z, train, gen, level, evaluate):
    """One Metropolis step of a symmetric proposal for the prior restricted to the level
    set (a proposal that keeps the prior): accept ``candidate`` iff it is inside."""
    t, g = evaluate(candidate)
    inside = t < level
    return (jnp.where(inside, candidate, z), jnp.where(inside, t, train),
            jnp.where(inside, g, gen), MoveInfo(inside, jnp.int32(1)))


def towards(target):
    """Step-size retuning between levels towards an acceptance of ``target``."""

    def adapt(param, acceptance):
        return jnp.clip(param * jnp.exp(2.0 * (acceptance - target)), 1e-4, 1.0)

    return adapt


# The moves ``--move`` names: name -> a function of no arguments that makes the Move.
# ``essK`` is a chain of K elliptical slices per sweep.
MOVES = Registry("--move", {"ess": elliptical_slice,
                            "ess4": functools.partial(elliptical_slice, chain=4),
                            "ess8": functools.partial(elliptical_slice, chain=8),
                            "pcn": pcn})


@functools.lru_cache(maxsize=None)
def make_move(name):
    """A registered move by name (one object per name, so equal moves share compiled
    programs)."""
    return MOVES.resolve(name)()
