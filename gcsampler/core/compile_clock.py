"""Seconds spent compiling, read from JAX's own compile events.

A splitting run compiles its programs on its first level (and a sweep on its first cell of
each shape); timing the levels would count that as sampling. JAX reports how long it
traces, lowers and compiles (or reads from the persistent cache) each program through
:mod:`jax.monitoring`; :func:`compile_clock` adds those durations up while it is open.
"""

import contextlib

import jax

# JAX's duration events for the three stages of making a program (dispatch.py).
COMPILE_EVENTS = frozenset({
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
})


class CompileClock:
    """The compile seconds counted so far (``seconds``)."""

    def __init__(self):
        self.seconds = 0.0

    def _record(self, event, duration, **kwargs):
        del kwargs
        if event in COMPILE_EVENTS:
            self.seconds += duration


@contextlib.contextmanager
def compile_clock():
    """``with compile_clock() as clock:`` counts, in ``clock.seconds``, the seconds JAX
    spends making programs (in any thread) until the block ends."""
    clock = CompileClock()
    listener = clock._record  # one bound method, registered and removed
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield clock
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
