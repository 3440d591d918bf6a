"""JAX's persistent compilation cache: a setting compiled once starts sampling at once.

Compiling a run's device program takes seconds (more for deep or wide networks); JAX can
keep compiled programs on disk and reuse them in later processes. The command line
turns this on by default, in ``$XDG_CACHE_HOME/gcsampler/jax`` (``~/.cache/...``), or
where ``GCSAMPLER_COMPILATION_CACHE`` says ('none' turns it off). From Python, call
:func:`use` (or set JAX's own ``jax_compilation_cache_dir``).
"""

import os
import pathlib

import jax

ENV = "GCSAMPLER_COMPILATION_CACHE"
OFF = "none"


def default_location():
    """Where the command line keeps compiled programs unless told otherwise."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    cache_home = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return str(pathlib.Path(cache_home) / "gcsampler" / "jax")


def use(location):
    """Keep compiled programs in the directory ``location`` (made if missing), or
    'none': leave JAX's setting as it is. Returns the directory used, or None."""
    if location == OFF:
        return None
    path = pathlib.Path(location).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path
