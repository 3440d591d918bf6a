"""The compile clock counts the seconds JAX spends making programs, and only those."""

import jax
import jax.numpy as jnp

from gcsampler.core.compile_clock import compile_clock


def test_the_clock_counts_a_new_program_and_not_a_compiled_one():
    def fresh(x):  # a new function object: no cached program
        return jnp.sin(x) * 3.0 + jnp.cumsum(x)

    program = jax.jit(fresh)
    x = jnp.arange(7.0)
    with compile_clock() as clock:
        program(x).block_until_ready()
        compiled = clock.seconds
        for _ in range(3):
            program(x).block_until_ready()
    assert compiled > 0.0
    assert clock.seconds == compiled


def test_the_clock_stops_counting_when_its_block_ends():
    with compile_clock() as clock:
        pass
    jax.jit(lambda x: x * 2.0 - 1.0)(jnp.ones(3)).block_until_ready()
    assert clock.seconds == 0.0
