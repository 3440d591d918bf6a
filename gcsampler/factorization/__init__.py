"""Deep matrix factorizations, the seed papers' first system, as a G&C task.

- ``problems``: measurement problems and their losses (``TASKS``: sensing, completion);
- ``models``: factorizations and activations (``ACTIVATIONS``);
- ``priors``: priors over the layers (``PRIORS``);
- ``samplers``, ``collapsed``: how a draw is generated (``SAMPLERS``);
- ``task``: the G&C task (``factorization_task``, ``guess_and_check``, ``regenerate``);
- ``latent``, ``fibers``, ``splitting``: multilevel splitting of factorizations;
- ``gd``: the gradient-descent baseline (optax);
- ``interpolants``: the minimum nuclear- and Frobenius-norm interpolants;
- ``volume``: the exact log p of depth-1 linear problems.
"""
