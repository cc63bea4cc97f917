"""The local runtime as an operator drives it in tests: ``dpc local up`` in a subprocess
stopped by a signal, with no notifier credentials, and a pipeline's latest status."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from local_helpers import DPC, runs_of

#: Notifier settings emptied: notifications are printed, not sent.
NO_CREDENTIALS = {"SLACK_BOT_TOKEN": "", "DPC_SMTP_HOST": "", "OPSGENIE_API_KEY": ""}


def status(ws: Path, name: str) -> str | None:
    rs = runs_of(ws, name) if (ws / ".dpc" / "state.db").exists() else []
    return rs[-1]["status"] if rs else None


class Up:
    def __init__(self, ws: Path, log: Path) -> None:
        self.log = log
        self.out = log.open("w")
        self.proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                                     stdout=self.out, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **NO_CREDENTIALS})

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.out.close()
