"""A step cannot read the runtime's notifier secrets through /proc.

A step runs as the user who runs `dpc local up`, and /proc/$PPID/environ shows the block
its parent was *executed* with (unsetting a variable does not change it). The runtime
therefore re-executes itself without its notifier secrets (handing them over through a
pipe) and makes itself non-dumpable (local/secret_handoff.py). A real shell step here
reads the environ and cmdline of every ancestor up to the test process, as they are,
reversed and in base64 (which redaction of known values cannot catch), and fails so that
its output becomes the run's error and reaches Slack, email and OpsGenie (local fakes
speaking the real protocols); no form of any secret may appear anywhere.

The test process and the processes above it are not dpc's: the walk stops there (a
launcher started with the secret in its own environment shows it to the same user; the
README says so). What no test here can show: root (CAP_SYS_PTRACE) reads any process's
memory and environment, non-dumpable or not — the values must be in the runtime's memory
to be used. The second test runs the runtime as an unprivileged user (setpriv when the
tests run as root) to show that another process of that user cannot open the runtime's
environ, mem or fd.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack
from fakes.smtp_server import FakeSmtp
from local_helpers import DPC, A, runs_of, write_pipeline

DAY = "2026-11-26"
SLACK_TOKEN = "slack-tok-5e1d3c2b9a7f"
OPSGENIE_KEY = "og-key-77c1a0e4f2d8"
SMTP_PASSWORD = "pw-Zk4mQ9vR2xLw"
SECRETS = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "OPSGENIE_API_KEY": OPSGENIE_KEY,
           "DPC_SMTP_PASSWORD": SMTP_PASSWORD}

WALK = r"""steps:
  - name: snoop
    type: shell
    passEnv: [STOP_PID]
    command: |
      p=$PPID
      while [ -n "$p" ] && [ "$p" != "$STOP_PID" ] && [ "$p" -gt 1 ]; do
        echo "== ancestor $p"
        echo "-- environ"; cat /proc/$p/environ; echo
        echo "-- environ reversed"; tr '\0' '\n' < /proc/$p/environ | rev
        echo "-- environ base64"; base64 -w0 < /proc/$p/environ; echo
        echo "-- environ lines base64"
        tr '\0' '\n' < /proc/$p/environ | while IFS= read -r l; do
          printf %s "$l" | base64 -w0; echo
        done
        echo "-- cmdline"; tr '\0' ' ' < /proc/$p/cmdline; echo
        echo "-- cmdline reversed"; tr '\0' ' ' < /proc/$p/cmdline | rev
        echo "-- cmdline base64"; base64 -w0 < /proc/$p/cmdline; echo
        p=$(awk '/^PPid:/ {print $2}' /proc/$p/status)
      done
      echo "== walked"
      exit 3
notifications:
  type: FAILURES_ONLY
  targets:
    - {channel: SLACK, addresses: [data-alerts]}
    - {channel: EMAIL, addresses: [team@example.com]}
    - {channel: OPSGENIE, addresses: [data-team]}
"""


def forms(secret: str) -> set[str]:
    """The secret as it is, reversed, and base64 at each of the three alignments it can
    have inside a longer encoded text (only the characters that depend on it alone)."""
    raw = secret.encode()
    out = {secret, secret[::-1]}
    for pad, start in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        out.add(encoded[start:(pad + len(raw)) // 3 * 4])
    return out


def test_the_forms_find_a_secret_inside_any_encoded_text() -> None:
    for prefix in ("", "A", "AB", "SLACK_BOT_TOKEN=", "x=\0y"):
        for suffix in ("", "\0", "\0NEXT=1"):
            encoded = base64.b64encode((prefix + SLACK_TOKEN + suffix).encode()).decode()
            assert any(f in encoded for f in forms(SLACK_TOKEN) - {SLACK_TOKEN}), prefix


def _base_env() -> dict[str, str]:
    """A minimal environment for the runtime: nothing of this machine's but these."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": tempfile.gettempdir()}


@pytest.fixture(scope="module")
def snooped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    with FakeSlack(token=SLACK_TOKEN) as slack, \
            FakeSmtp(credentials=("dpc", SMTP_PASSWORD)) as smtp, \
            FakeOpsGenie(api_key=OPSGENIE_KEY) as opsgenie:
        ws = tmp_path_factory.mktemp("snoop") / "ws"
        write_pipeline(ws, "snoop", A, "trigger:\n  schedule: {hour: 3}\n" + WALK)
        env = {**_base_env(), **SECRETS, "DPC_SLACK_API_URL": slack.api_url,
               "DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port),
               "DPC_SMTP_USER": "dpc", "DPC_OPSGENIE_API_URL": opsgenie.url,
               "STOP_PID": str(os.getpid())}
        subprocess.run([DPC, "local", "start", "snoop", "--date", DAY, "-w", str(ws)],
                       env=env, check=True, capture_output=True, timeout=120)
        up = subprocess.run([DPC, "local", "up", "--until-idle", "--no-schedule", "-w",
                             str(ws)], env=env, capture_output=True, text=True, timeout=300)
        listed = subprocess.run([DPC, "local", "notifications", "--format", "json", "-w",
                                 str(ws)], env=env, capture_output=True, text=True,
                                timeout=120)
        yield {
            "ws": ws, "up": up, "listed": listed.stdout + listed.stderr,
            "slack": json.dumps(slack.calls_of("chat.postMessage")
                                + slack.calls_of("chat.update")),
            "opsgenie": json.dumps([a.__dict__ for a in opsgenie.alerts]),
            "email": "".join(str(m.message) + "".join(
                str(p.get_content()) for p in m.message.walk() if not p.is_multipart())
                for m in smtp.received)}


def _log(ws: Path) -> str:
    (log,) = (ws / ".dpc" / "runs").rglob("*.log")
    return log.read_text(errors="replace")


def test_the_step_did_read_the_runtimes_environ_and_cmdline(snooped: dict) -> None:
    """The walk worked: the runtime's other variables are there in every form."""
    log = _log(snooped["ws"])
    assert "== ancestor" in log and "== walked" in log
    assert "LANG=C.UTF-8" in log and "=LRU_IPA_KCALS_CPD" in log
    assert base64.b64encode(b"DPC_SMTP_USER=dpc").decode() in log
    assert "local up --until-idle" in log
    (run,) = runs_of(snooped["ws"], "snoop")
    assert run["status"] == "FAILED"
    assert "exit" in snooped["slack"] or "FAILED" in snooped["slack"]
    assert snooped["opsgenie"] != "[]" and snooped["email"]


def test_no_form_of_a_secret_is_anywhere(snooped: dict) -> None:
    ws: Path = snooped["ws"]
    up: subprocess.CompletedProcess[str] = snooped["up"]
    places = {"console of dpc local up": up.stdout + up.stderr,
              "dpc local notifications": snooped["listed"],
              "Slack messages": snooped["slack"], "OpsGenie alerts": snooped["opsgenie"],
              "emails": snooped["email"]}
    files = [p for p in (ws / ".dpc").rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files) and any(p.suffix == ".log" for p in files)
    for path in files:
        places[str(path.relative_to(ws))] = path.read_bytes().decode("latin-1")
    for name, secret in SECRETS.items():
        for form in forms(secret):
            for where, text in places.items():
                assert form not in text, f"{name} as {form!r} is in {where}"


# -- another process of the same (unprivileged) user -------------------------------------

PEEK = r"""steps:
  - name: peek
    type: shell
    command: |
      id -u
      for f in environ mem; do
        if { : < /proc/$PPID/$f; } 2>/dev/null; then echo "$f: readable"; else echo "$f: denied"; fi
      done
      if ls /proc/$PPID/fd >/dev/null 2>&1; then echo "fd: readable"; else echo "fd: denied"; fi
      tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | rev
      tr '\0' ' ' < /proc/$PPID/cmdline | rev
"""
NOBODY = 65534


def test_another_process_of_the_user_cannot_open_the_runtimes_environ_mem_or_fd() -> None:
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running the tests as root needs setpriv (util-linux)"
        as_user = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    root = Path(tempfile.mkdtemp(prefix="dpc-peek-"))
    opened = _traversable_by_others([Path(DPC)]) \
        if as_user else []
    try:
        ws = root / "ws"
        write_pipeline(ws, "peek", A, "trigger:\n  schedule: {hour: 3}\n" + PEEK)
        if as_user:
            for path in [root, *root.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        env = {**_base_env(), "HOME": str(root), "SLACK_BOT_TOKEN": SLACK_TOKEN}
        for args in (["local", "start", "peek", "--date", DAY],
                     ["local", "up", "--until-idle", "--no-schedule"]):
            done = subprocess.run([*as_user, DPC, *args, "-w", str(ws)], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
        log = _log(ws)
        uid = log.splitlines()[0]
        assert uid == str(NOBODY if as_user else os.geteuid())
        assert "environ: denied" in log and "mem: denied" in log and "fd: denied" in log
        assert "pu lacol" in log  # cmdline stays readable: it holds nothing secret
        for form in forms(SLACK_TOKEN):
            assert form not in log + done.stdout + done.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for path, mode in opened:
            os.chmod(path, mode)


def _traversable_by_others(paths: list[Path]) -> list[tuple[Path, int]]:
    """Let other users traverse the folders above ``paths`` (the clone may sit in a
    ``mktemp -d`` folder, mode 0700, as CI's does): each folder given o+x, with its old
    mode to restore."""
    changed: list[tuple[Path, int]] = []
    for path in paths:
        for folder in path.parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH and all(folder != c for c, _ in changed):
                changed.append((folder, stat.S_IMODE(mode)))
                os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)
    return changed


@pytest.mark.parametrize("value", ["abc", "1", "987"])
def test_a_stray_handoff_variable_is_one_clear_line(value: str) -> None:
    done = subprocess.run([DPC, "local", "up", "--until-idle", "-w", "/nonexistent"],
                          env={**_base_env(), "DPC_SECRETS_FD": value},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: DPC_SECRETS_FD=") and "unset it" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_pipe_that_does_not_hold_the_secrets_is_refused() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b'["not", "a mapping"]')
    os.close(write_end)
    try:
        done = subprocess.run([DPC, "--version"], pass_fds=[read_end],
                              env={**_base_env(), "DPC_SECRETS_FD": str(read_end)},
                              capture_output=True, text=True, timeout=120)
    finally:
        os.close(read_end)
    assert done.returncode == 2
    assert "not the secrets dpc hands over" in done.stderr and "Traceback" not in done.stderr
