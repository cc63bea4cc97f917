"""How much memory one request can make `dpc ui` take (issue 21, item 2).

Starts `dpc ui` over a registered copy of the shell case study, sends one POST
/api/action whose pipeline name is N MB long (as the page's own action: its Origin and,
when the server prints one, its token), and prints the server's peak resident memory
(VmHWM of /proc/PID/status) before and after, the answer and the time it took.

    .venv/bin/python bench/ui_request_memory.py 40 400 [--cap-gb 8]

``--cap-gb`` limits the server's address space (RLIMIT_AS) so that a server without
bounds fails instead of taking the machine's memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DPC = str(Path(sys.executable).parent / "dpc")


def hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def one(ws: Path, mb: float, cap_gb: float | None) -> None:
    def limit() -> None:
        if cap_gb:
            size = int(cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    proc = subprocess.Popen([DPC, "ui", "-w", str(ws), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, preexec_fn=limit)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(": ", 1)[1].split()[0]
        base, _, token = url.partition("?token=")
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        body = b'{"action": "run", "pipeline": "' + b"x" * int(mb * 1_000_000) + b'"}'
        head = (f"POST /api/action HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Origin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                + (f"Cookie: dpc-ui-{port}={token}\r\n" if token else "")
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        # Warm: a page read and a small action first, so that what the first request of a
        # server imports is not counted as the big one's.
        for warm in (f"GET /api/graph HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Connection: close\r\n\r\n".encode(),
                     head.replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 40")
                     + b'{"action": "run", "pipeline": "x"}'.ljust(40)):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                sock.sendall(warm)
                while sock.recv(65536):
                    pass
        before = hwm_kb(proc.pid)
        start = time.monotonic()
        status = "no answer"
        with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
            try:
                sock.sendall(head + body)
            except OSError as exc:
                status = f"(send stopped: {exc.strerror}) "
            try:
                reply = sock.recv(200).split(b"\r\n", 1)[0].decode()
                status = status.replace("no answer", "") + (reply or "closed")
            except OSError as exc:
                status += f"recv: {exc.strerror}"
        took = time.monotonic() - start
        time.sleep(0.5)
        alive = proc.poll() is None
        after = hwm_kb(proc.pid) if alive else -1
        print(f"{mb:>6} MB name: {status:<40} {took:6.2f} s  VmHWM {before / 1024:7.1f} MB -> "
              + (f"{after / 1024:7.1f} MB (+{(after - before) / 1024:.1f} MB)" if alive
                 else "server died"), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mb", type=float, nargs="+")
    parser.add_argument("--cap-gb", type=float, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        shutil.copytree(REPO / "examples" / "case-study-shell", ws,
                        ignore=shutil.ignore_patterns(".dpc"))
        subprocess.run([DPC, "local", "up", "--until-idle", "--no-schedule", "-w", str(ws)],
                       check=True, stdout=subprocess.DEVNULL, env={**os.environ})
        for mb in args.mb:
            one(ws, mb, args.cap_gb)


if __name__ == "__main__":
    main()
