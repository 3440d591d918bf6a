"""The watch of a process in a multi-process run: it ends the process, with one line on
stderr, when the processes lose each other (:mod:`gcsampler.runs.distributed`).

JAX's runtime would abort them later, with a C++ stack trace: a failed connect or
heartbeat goes to a C++ callback, which gcsampler cannot turn into a Python error (the
client's ``missed_heartbeat_callback`` cannot be a Python function: the runtime fails to
pass it its status, std::bad_cast, and aborts). Process 0's death would abort the others
at once, were its coordination service not served from a child process that outlives it
(:mod:`gcsampler.runs.coordination`).
"""

import contextlib
import itertools
import os
import socket
import sys
import threading
import time

import jax


class Watch:
    """Ends this process of a multi-process run, with one line on stderr, when the
    processes lose each other (see :func:`gcsampler.runs.distributed.initialize`).

    Alarms are deadlines that a thread watches: the end of a wait for every process
    (joining, leaving), and the end of each other process's silence, which its heartbeats
    push back (a count in the runtime's key-value store, every ``timeout / 20`` seconds).
    A process that ends tells the others (its count becomes "ended"), which end soon
    after. Process 0's coordination service outlives it (:mod:`.coordination`); where it
    cannot, process 0 ends last, as the others' runtimes abort with a stack trace once it
    is gone. So every process ends within ``timeout`` seconds.
    """

    _BEATS = "gcsampler/alive/"
    _ENDED = "ended"

    def __init__(self, team, address, timeout, command, run_dir):
        self.team, self.address, self.timeout = team, address, timeout
        self.command, self.run_dir = command, run_dir
        self.every = timeout / 20  # between heartbeats
        # The longest silence: seen late by a heartbeat, ended after process 0's wait.
        self.silence = timeout - 6 * self.every
        self._alarms = {}  # name -> (deadline, end): end() ends the process
        self._changed = threading.Condition()
        self._closed = False
        self._ending = threading.Lock()  # held by whoever ends the process, never released
        self._stop = threading.Event()  # stops the heartbeats
        self._ended = False  # whether the last heartbeat says "ended"
        self._client = self._beats = None
        threading.Thread(target=self._watch, name="gcsampler-watch", daemon=True).start()

    def alarm(self, name, seconds, end):
        """Call ``end()`` in ``seconds`` unless alarm ``name`` is set again or cleared."""
        with self._changed:
            self._alarms[name] = (time.monotonic() + seconds, end)
            self._changed.notify()

    @contextlib.contextmanager
    def waiting(self, name, message):
        """Within the block, a wait for every process: end with the line ``message()`` if it
        lasts the timeout."""
        self.alarm(name, self.timeout - self.every, lambda: self.end(2, message(), tell=False))
        try:
            yield
        finally:
            with self._changed:
                self._alarms.pop(name, None)

    def close(self):
        """Stop watching (this process left the run)."""
        self.stop_beating()
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _watch(self):
        """The watch thread: wait for the first alarm that is due, and call its end."""
        with self._changed:
            while True:
                if self._closed:
                    return
                now = time.monotonic()
                due = [end for deadline, end in self._alarms.values() if deadline <= now]
                if due:
                    break
                next_deadline = min((deadline for deadline, _ in self._alarms.values()),
                                    default=None)
                self._changed.wait(None if next_deadline is None else next_deadline - now)
        due[0]()

    def start(self, client):
        """Start the heartbeats, through ``client`` (once this process has joined)."""
        self._client = client
        for process in self._others():
            self._heard(process, None)
        self._beats = threading.Thread(target=self._beat, name="gcsampler-heartbeat",
                                       daemon=True)
        self._beats.start()

    def stop_beating(self):
        """Stop the heartbeats, and the alarms they push back."""
        self._stop.set()
        if self._beats is not None:
            self._beats.join(self.every)
        with self._changed:
            self._alarms.clear()

    def _beat(self):
        """The heartbeat thread: count, and push back the alarms of the processes heard."""
        key, heard = f"{self._BEATS}{self.team.process}", {}
        for count in itertools.count():
            if self._stop.wait(self.every):
                break
            try:
                self._client.key_value_set(key, str(count), allow_overwrite=True)
                beats = self._client.key_value_dir_get(self._BEATS)
            except jax.errors.JaxRuntimeError:
                return  # the runtime is gone: the alarms end this process
            if not self.team.leader:
                self.alarm("coordinator", self.silence, lambda: self.end(2, self.stopping(
                    f"the coordinator (process 0, at {self.address}) stopped responding "
                    f"({self._silence()})"), tell=False))
            for name, beat in beats:
                process = int(name.rpartition("/")[2])
                if process != self.team.process and heard.get(process) != beat:
                    heard[process] = beat
                    self._heard(process, beat)
        if self._ended:
            with contextlib.suppress(jax.errors.JaxRuntimeError):
                self._client.key_value_set(key, self._ENDED, allow_overwrite=True)

    def _heard(self, process, beat):
        """Push back the end of ``process``'s silence: ``beat`` came from it (None: it
        joined). If it ended, end soon too (unless this process ends on its own first:
        then they failed at the same point, each with its own line)."""
        if beat == self._ENDED:
            self.alarm(process, self.every, lambda: self.end(
                2, self.stopping(f"process {process} stopped (its own output says why)"),
                gone={process}))
        else:
            self.alarm(process, self.silence, lambda: self.end(
                2, self.stopping(f"process {process} stopped responding ({self._silence()})"),
                gone={process}))

    def _silence(self):
        return f"killed, crashed or cut off: silent for {self.silence:.3g} s"

    def end(self, code, line=None, tell=True, gone=()):
        """End this process with exit code ``code``, after writing ``line`` to stderr;
        ``tell``: tell the other processes first (process 0 then waits for those not
        ``gone`` to end, at most three heartbeats)."""
        self._ending.acquire()
        if line:
            sys.stderr.write(line + "\n")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if tell and self._beats is not None:
            self._ended = True
            self.stop_beating()
            if self.team.leader:
                self._wait_for_others(set(self._others()) - set(gone))
        os._exit(code)

    def _wait_for_others(self, others):
        """Wait until the processes ``others`` say they ended (at most three heartbeats)."""
        step, deadline = self.every / 10, time.monotonic() + 3 * self.every
        while others and time.monotonic() < deadline:
            try:
                beats = dict(self._client.key_value_dir_get(self._BEATS))
            except jax.errors.JaxRuntimeError:
                return
            others = {p for p in others if beats.get(f"{self._BEATS}{p}") != self._ENDED}
            time.sleep(step)  # the last ones to say so end just after

    def _others(self):
        return [p for p in range(self.team.processes) if p != self.team.process]

    def _say(self, text):
        return f"{self.command}: process {self.team.process} of {self.team.processes} {text}"

    def stopping(self, why):
        """The line of a process that stops because ``why``, and how to continue the run."""
        again = (f"continue the run with `{self.command} --resume {self.run_dir} "
                 f"--num_processes {self.team.processes} --process_id P --coordinator_address "
                 f"{self.address}` on every process P" if self.run_dir else
                 "start every process again")
        return self._say(f"stops: {why}; its checkpoints are kept: {again}")

    def join_failed(self):
        """The line of a process whose processes did not all join within the timeout."""
        host, _, port = self.address.rpartition(":")
        reason = f"did not see every process join the run at {self.address}"
        if not self.team.leader:
            try:
                socket.create_connection((host.strip("[]"), int(port)), self.every).close()
            except OSError:
                reason = f"could not reach the coordinator (process 0) at {self.address}"
        return self._say(f"{reason} within {self.timeout:g} s; start every process with the "
                        f"same --num_processes and --coordinator_address and its own "
                        f"--process_id (or raise --distributed_timeout)")
