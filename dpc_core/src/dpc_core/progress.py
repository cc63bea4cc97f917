"""Progress on long work: a spinner with elapsed time on a terminal, plain lines elsewhere.

On a TTY, :func:`progress` shows a rich spinner with the label and the time elapsed,
then one line with the total. Elsewhere (CI logs, pipes) it prints a start line, a
"still ..." line every ``every`` seconds and the total, so logs stay plain text.
rich is imported only here, and only when a terminal is there to draw on: ``dpc --help``
never imports it.

:func:`heartbeat` is the plain-lines half alone, for output that other threads also
write to (the local runtime's console).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

#: Seconds between "still running" lines when no spinner can be drawn.
DEFAULT_EVERY = 30.0
#: Overrides DEFAULT_EVERY (seconds), e.g. DPC_HEARTBEAT_S=10 for a closer watch.
EVERY_ENV = "DPC_HEARTBEAT_S"


def heartbeat_every() -> float:
    """Seconds between progress lines: ``DPC_HEARTBEAT_S`` or :data:`DEFAULT_EVERY`."""
    try:
        value = float(os.environ.get(EVERY_ENV, ""))
    except ValueError:
        return DEFAULT_EVERY
    return value if value > 0 else DEFAULT_EVERY


def elapsed_text(seconds: float) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``: what a person reads at a glance."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@contextmanager
def heartbeat(say: Callable[[float], None], every: float | None = None) -> Iterator[None]:
    """Call ``say(elapsed_seconds)`` every ``every`` seconds (default: :func:`heartbeat_every`)
    while the block runs."""
    every = heartbeat_every() if every is None else every
    stop = threading.Event()
    t0 = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            say(time.monotonic() - t0)

    thread = threading.Thread(target=beat, name="dpc-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 1)


@contextmanager
def progress(label: str, *, stream: TextIO | None = None, every: float | None = None,
             spinner: bool | None = None) -> Iterator[None]:
    """Show that ``label`` (e.g. "synthesizing dpc-central") is under way, with elapsed time.

    ``spinner`` defaults to whether ``stream`` (stderr) is a terminal. The last line says
    ``label: done in 12.3s`` or ``label: failed after 12.3s``.
    """
    out = stream if stream is not None else sys.stderr
    live = out.isatty() if spinner is None else spinner
    t0 = time.monotonic()

    def line(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    ok = False
    try:
        if live:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(file=out)
            with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                bar.add_task(label, total=None)
                yield
        else:
            line(f"{label} ...")
            with heartbeat(lambda s: line(f"{label}: still running ({elapsed_text(s)})"), every):
                yield
        ok = True
    finally:
        took = elapsed_text(time.monotonic() - t0)
        line(f"{label}: done in {took}" if ok else f"{label}: failed after {took}")
