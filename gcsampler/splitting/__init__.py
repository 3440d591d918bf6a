"""Adaptive multilevel splitting: exact G&C samples and log p at any rarity.

- ``base``: the per-replicate kernels (``init``, ``build_level``, ``move_particles``);
- ``moves``: Markov moves that keep the prior restricted to a level set (``MOVES``);
- ``results``: ``SplittingResult``, mid-run ``Snapshot`` and ``combine``;
- ``estimates``: log p with its intervals, the G&C gen loss, the curve over eps.

A task supplies Gaussian coordinates, a loss and a driver; the factorizations' is
:mod:`gcsampler.factorization.splitting`.
"""
