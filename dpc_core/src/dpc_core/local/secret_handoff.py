"""Notifier secrets out of the local runtime's process environment.

A step runs as the user who runs ``dpc local up``, so it can read what the kernel shows
of its parent: ``/proc/$PPID/environ``, ``cmdline``, and (``ptrace`` rights) ``mem``.
``environ`` is the block the process was *executed* with: unsetting a variable
(``os.environ``, ``unsetenv``) does not change it. So, when a notifier's secret variable
(``NotifierType.secret_env``) is set, ``dpc local up`` (the only command that runs
steps):

1. reads those variables, writes them (JSON) into a pipe and executes itself again
   (``os.execve``, same pid, same arguments) with the variables removed and the pipe's
   read end inherited, named by :data:`ENV_FD`; nothing secret is in the new image's
   environment or command line;
2. the new image reads the pipe to its end and closes it before anything else
   (:func:`receive`, from ``dpc``'s ``main``); the runtime gets the values from
   :func:`runtime_env`, steps never (``local/step_env.py``);
3. on Linux, makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``,
   :func:`forbid_inspection`): ``/proc/PID/environ``, ``mem``, ``fd``... become
   root's, so another process of the same (non-root) user — a step — can neither
   read them nor ``ptrace`` the runtime. ``execve`` resets the flag, so steps are
   dumpable as usual.

Not covered (README, "secrets"): root (and ``CAP_SYS_PTRACE``) reads any process's
memory, where the values must be to be used; a process that started ``dpc`` with the
secret in *its* environment (``TOKEN=... uv run dpc``: uv is the parent; a wrapper
shell started as ``env TOKEN=... sh``; a container's entry shell) shows it in its own
``/proc/PID/environ`` to the same user.
Steps under another user (or in a container) are the way to keep a step from both.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping

from dpc_core.errors import DpcError

#: The variable naming the inherited pipe (a file descriptor number; not a secret).
ENV_FD = "DPC_SECRETS_FD"
#: At most this many bytes are handed over: the pipe is filled before the new image
#: reads it, so the payload must fit in its buffer (16 KiB on every POSIX system dpc
#: runs on; secrets are tens of bytes).
MAX_BYTES = 16 * 1024
PR_SET_DUMPABLE = 4

_received: dict[str, str] | None = None
_may_reexec = False


class HandoffError(DpcError):
    """The secrets could not be handed to the re-executed runtime."""


def allow_reexec() -> None:
    """Called by ``dpc``'s own ``main`` when it runs the process's command line: only
    then may a command execute the process again (a test or an application calling the
    CLI in its own process must not be replaced)."""
    global _may_reexec
    _may_reexec = True


def receive() -> None:
    """In an image executed by :func:`runtime_env`: read the handed-over secrets and
    close the pipe; nothing when :data:`ENV_FD` is not set. Refuses a malformed hand-over
    (:class:`HandoffError`)."""
    global _received
    raw = os.environ.pop(ENV_FD, None)
    if raw is None:
        return
    forbid_inspection()  # before the values are in this process's memory
    try:
        fd = int(raw)
    except ValueError:
        raise HandoffError(f"{ENV_FD}={raw!r}: not a file descriptor (dpc sets it itself "
                           "when it restarts without its secrets; unset it)") from None
    try:
        if fd < 3 or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise HandoffError(f"{ENV_FD}={raw}: not a pipe dpc handed over; unset it")
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise HandoffError(f"{ENV_FD}={raw}: cannot read it ({exc.strerror}); "
                           "unset it") from None
    finally:
        if fd >= 3:
            with contextlib.suppress(OSError):
                os.close(fd)
    try:
        data = json.loads(b"".join(chunks)) if size <= MAX_BYTES else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise HandoffError(f"{ENV_FD}={raw}: not the secrets dpc hands over; unset it")
    _received = data


def received() -> dict[str, str]:
    """The secrets handed over to this image (empty when none were)."""
    return dict(_received or {})


def runtime_env(secret_names: Iterable[str]) -> dict[str, str]:
    """The environment the runtime reads its settings and secrets from.

    When one of ``secret_names`` is in this process's environment and the process may be
    executed again (:func:`allow_reexec`, POSIX), it is, without them (see the module
    docstring): this call then does not return in this image. Otherwise: the process
    environment plus what was handed over; the secrets stay in this process's
    environment only where it cannot restart itself (in-process callers, Windows).
    """
    present = {n: os.environ[n] for n in sorted(set(secret_names)) if n in os.environ}
    if present and _may_reexec and _received is None and os.name == "posix":
        _reexec(present, sys.executable, list(sys.orig_argv))
    env = dict(os.environ)
    env.update(_received or {})
    return env


def _reexec(secrets: Mapping[str, str], executable: str, argv: list[str]) -> None:
    payload = json.dumps(dict(secrets)).encode()
    if len(payload) > MAX_BYTES:
        raise HandoffError(f"{', '.join(secrets)}: together over {MAX_BYTES // 1024} KiB; a "
                           "notifier secret is a token or a password")
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)  # a full pipe is an error, never a hang
        written = os.write(write_end, payload)
    except OSError as exc:
        os.close(read_end)
        raise HandoffError(f"cannot hand the notifier secrets over: {exc}") from None
    finally:
        os.close(write_end)
    if written != len(payload):
        os.close(read_end)
        raise HandoffError("cannot hand the notifier secrets over: the pipe is too small")
    os.set_inheritable(read_end, True)
    env = {k: v for k, v in os.environ.items() if k not in secrets}
    env[ENV_FD] = str(read_end)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(executable, argv, env)
    except OSError as exc:
        os.close(read_end)
        print(f"warning: cannot restart without the notifier secrets in the environment "
              f"({executable}: {exc.strerror}); steps of the same user can read them in "
              f"/proc/{os.getpid()}/environ", file=sys.stderr)


def forbid_inspection() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)`` on Linux (see the module docstring); whether it was
    done."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
