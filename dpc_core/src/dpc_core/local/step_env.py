"""What a local step's process gets: a minimal environment, and its output written to the
step log with every known secret redacted.

A step used to inherit the runtime's whole environment, notifier tokens included, and a
step that printed its environment copied them into its log, the run's error and every
message about the run. Now a step gets only:

- ``DPC_*`` variables the runtime sets for it (:meth:`RunContext.environment`),
- ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``TERM``, ``TZ``, ``TMPDIR``,
  ``LANG``, ``LANGUAGE`` and ``LC_*`` from the runtime's environment,
- the names the step plugin's command asks for (``LocalCommand.pass_env``: a Spark step's
  ``JAVA_HOME``, ``SPARK_HOME``, ...) and those the step declares (``passEnv:`` in
  pipeline.yaml),
- the values the plugin sets (``LocalCommand.env``: a shell step's ``env:``),

and never a variable a notifier plugin declares secret (``NotifierType.secret_env``), even
when asked for. Nor does the runtime's own environment, as ``/proc/$PPID/environ`` shows it,
hold them (``local/secret_handoff.py``). Whatever a step still prints is redacted line by
line before it reaches the step log, from which the run's error is taken.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import IO

from dpc_core.notify import Secrets
from dpc_core.types import LocalCommand

#: Variables of the runtime's environment every step gets when they are set.
BASE_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR",
                      "LANG", "LANGUAGE"})
BASE_PREFIXES = ("LC_",)


def step_environment(runtime_env: Mapping[str, str], dpc_env: Mapping[str, str],
                     command: LocalCommand, declared: Iterable[str],
                     withheld: Iterable[str]) -> dict[str, str]:
    """The environment of a step's process (see the module docstring).

    ``dpc_env`` is what the runtime sets (``DPC_*``), ``declared`` the step's ``passEnv``,
    ``withheld`` the notifier secrets no step may get.
    """
    never = set(withheld)
    env = {k: v for k, v in runtime_env.items()
           if (k in BASE_ENV or k.startswith(BASE_PREFIXES)) and k not in never}
    for name in (*command.pass_env, *declared):
        if name in runtime_env and name not in never:
            env[name] = runtime_env[name]
    env.update(dpc_env)
    env.update(command.env)
    return env


def withheld_names(asked: Iterable[str], withheld: Iterable[str]) -> list[str]:
    """Of the variables a step asks for, those it will not get because they are secrets."""
    never = set(withheld)
    return sorted({n for n in asked if n in never})


def copy_redacted(source: IO[bytes], sink: IO[bytes], secrets: Secrets) -> None:
    """Copy a step's output to its log line by line, each line redacted; until EOF."""
    try:
        # Lines up to 1 MiB: a longer line is cut (a secret across the cut could escape).
        for line in iter(lambda: source.readline(1 << 20), b""):
            sink.write(secrets.redact_bytes(line))
            sink.flush()  # `dpc local logs` of a running step shows what it wrote so far
    except (OSError, ValueError):
        pass  # the log was closed: the runtime stopped waiting for a step's leftover child


def start_copy(source: IO[bytes], sink: IO[bytes], secrets: Secrets) -> threading.Thread:
    """:func:`copy_redacted` in a daemon thread (a step's background child may hold the
    pipe open after the step exited; the runtime does not wait for it)."""
    t = threading.Thread(target=copy_redacted, args=(source, sink, secrets),
                         name="dpc-step-log", daemon=True)
    t.start()
    return t
