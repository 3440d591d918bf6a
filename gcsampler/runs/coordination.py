"""Process 0's coordination service, served from a child process, so that process 0's
death (SIGKILL, a crash) does not abort the other processes of a run.

JAX's distributed runtime serves its coordination service from process 0, and the other
processes' runtimes abort (a C++ stack trace, exit 134) within a second of losing it:
before their watches (:mod:`gcsampler.runs.watch`) could end them with one line. A child
of process 0, in a session of its own, outlives it: the others' watches then see process
0 fall silent and end them as for any other process.

JAX has no public way to do this: :func:`service_apart` swaps, while
``jax.distributed.initialize`` runs, the runtime module that ``jax._src.distributed``
creates the service from (JAX 0.10, 0.11). Without it (another JAX), or if the child
cannot start, the service lives in process 0, as before.

This file is also the child's program (``python -P coordination.py MODULE ARGS TIMEOUT``,
run by path so that it imports only the runtime module, not gcsampler; ``-P`` keeps its
directory off ``sys.path``).
"""

import contextlib
import importlib
import json
import os
import pathlib
import subprocess
import sys
import time


@contextlib.contextmanager
def service_apart(timeout):
    """Within the block, :func:`jax.distributed.initialize` starts process 0's coordination
    service in a child process (:class:`_Service`) that serves, once process 0 is gone,
    until the others have disconnected or for at most ``timeout`` seconds."""
    from jax._src import distributed as jax_distributed

    runtime = getattr(jax_distributed, "_jax", None)
    if not callable(getattr(runtime, "get_distributed_runtime_service", None)):
        yield
        return
    jax_distributed._jax = _Runtime(runtime, timeout)
    try:
        yield
    finally:
        jax_distributed._jax = runtime


class _Runtime:
    """JAX's runtime module, whose coordination service is served by a child process."""

    def __init__(self, runtime, timeout):
        self._runtime, self._timeout = runtime, timeout

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def get_distributed_runtime_service(self, *args, **kwargs):
        return _Service.start(self._runtime, args, kwargs, self._timeout)


class _Service:
    """Process 0's coordination service, served by a child process (:func:`serve`) in a
    session of its own (a signal to the terminal's processes does not reach it); it
    stands for the service in JAX's state, which only shuts it down."""

    def __init__(self, child):
        self._child = child

    @classmethod
    def start(cls, runtime, args, kwargs, timeout):
        """The service ``runtime.get_distributed_runtime_service(*args, **kwargs)`` would
        start, in a child process if one can serve it, else (as that call) in this one."""
        import jax

        try:
            child = subprocess.Popen(
                [sys.executable, "-P", str(pathlib.Path(__file__)), runtime.__name__,
                 json.dumps([sys.path, args, kwargs]), repr(float(timeout))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                start_new_session=True)
        except (OSError, TypeError, ValueError):  # no child, or arguments it cannot take
            return runtime.get_distributed_runtime_service(*args, **kwargs)
        error = None
        for reply in child.stdout:
            if reply == "ready\n":
                return cls(child)
            if reply.startswith("error "):
                name, message = json.loads(reply.partition(" ")[2])
                if name == jax.errors.JaxRuntimeError.__name__:  # e.g. the port is taken
                    error = jax.errors.JaxRuntimeError(message)
                break
        cls(child).shutdown()  # it failed, and ends
        if error is not None:
            raise error
        return runtime.get_distributed_runtime_service(*args, **kwargs)  # here, as before

    def shutdown(self):
        with contextlib.suppress(OSError):  # unless it ended
            self._child.stdin.write("stop\n")
            self._child.stdin.flush()
        with contextlib.suppress(OSError):
            self._child.stdin.close()
        self._child.wait()
        self._child.stdout.close()


def serve(module, arguments, timeout):
    """The child: create the service as ``module.get_distributed_runtime_service(*ARGS,
    **KWARGS)`` would (``arguments`` is JSON of [sys.path, ARGS, KWARGS]), say "ready" (or
    "error [type, message]") on stdout, and serve until process 0 says "stop" on stdin. If
    process 0 is gone (stdin ends), let go of its output (whoever reads it is not kept
    waiting) and serve until no other process is connected, for at most ``timeout``
    seconds, in which their watches end them."""
    try:
        sys.path[:], args, kwargs = json.loads(arguments)
        service = importlib.import_module(module).get_distributed_runtime_service(*args,
                                                                                   **kwargs)
    except Exception as err:  # reported to process 0, which decides
        print("error", json.dumps([type(err).__name__, str(err)]), flush=True)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline() == "stop\n":
        service.shutdown()
        return 0
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    port, deadline = int(args[0].rpartition(":")[2]), time.monotonic() + float(timeout)
    while time.monotonic() < deadline and _connections(port) != 0:
        time.sleep(0.05)
    os._exit(0)  # without the service's shutdown, which would wait for the others


def _connections(port):
    """How many connections this process has on ``port``; None: unknown (it is not seen
    listening there: no /proc/net, or another kind of address)."""
    try:
        sockets = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                   if os.path.islink(f"/proc/self/fd/{fd}")}
        states = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if os.path.exists(table):
                with open(table) as rows:
                    for row in list(rows)[1:]:
                        fields = row.split()
                        if (f"socket:[{fields[9]}]" in sockets
                                and int(fields[1].rpartition(":")[2], 16) == port):
                            states.append(fields[3])
    except (OSError, ValueError, IndexError):
        return None
    return states.count("01") if "0A" in states else None  # established, if listening


if __name__ == "__main__":
    sys.exit(serve(*sys.argv[1:]))
