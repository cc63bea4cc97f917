"""`dpc ui` against a hostile web page, a hostile client and careless input (issue 21).

A real `dpc ui` process over a real workspace's state, spoken to over plain sockets so
that any Host, Origin, method, target, header or body can be sent: DNS rebinding, the
access token, request bounds, 400s instead of 500s, the cap on live streams and their
shared watch, and the one-line errors of the commands around it. The last test sends
hypothesis-generated requests and checks the server never answers 500, never shows a
traceback and never lets a foreign Host or Origin through.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_helpers import DPC, SHELL_CASE_STUDY, copy_workspace, dpc, stop_process

pytestmark = pytest.mark.timeout(300)

DAY = "2026-11-26"
LISTINGS = "111111111111/listings"
WEST = (  # a deadline 30 h after midnight, 12 h west of UTC: past 9999-12-31 on the last day
    'name: far-west\naccount: "777777777777"\ndeadline: "+30h"\n'
    "trigger:\n  schedule: {hour: 3}\n  timezone: Etc/GMT+12\n"
    "steps:\n  - {name: s, type: shell, command: 'true'}\n")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        out: dict[str, object] = json.loads(self.body)
        return out


class Server:
    """``dpc ui ARGS --port 0`` in a subprocess: its address, port and token (from the
    line it prints); stderr goes to a file, read by the tests."""

    def __init__(self, workspace: Path, *args: str) -> None:
        self.err = workspace.parent / f"ui-{time.monotonic_ns()}.err"
        self.proc = subprocess.Popen([DPC, "ui", "-w", str(workspace), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self.err.open("w"),
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "http://" in line, line + self.err.read_text()
        url = line.split(": ", 1)[1].split()[0]
        base, _, self.token = url.partition("?token=")
        self.port = int(base.rstrip("/").rsplit(":", 1)[1])
        self.host = f"127.0.0.1:{self.port}"

    def send(self, raw: bytes, timeout: float = 20) -> Reply:
        """``raw`` (a whole request) on a new connection; the reply (the head only for an
        event stream)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            # Refused before the body was read: the reply is there all the same.
            with contextlib.suppress(OSError):
                sock.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            assert lines[0].startswith("HTTP/1.1 "), data[:200]
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.setdefault(k.strip().lower(), v.strip())
            if "text/event-stream" not in headers.get("content-type", ""):
                want = int(headers.get("content-length", "-1"))
                while want < 0 or len(body) < want:
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    body += chunk
            return Reply(int(lines[0].split()[1]), headers, body)

    def request(self, method: str, target: str, *, host: str | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Reply:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host or self.host}",
                 "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None and not any(k.lower() == "content-length" for k in headers or {}):
            lines.append(f"Content-Length: {len(body)}")
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def page(self) -> dict[str, str]:
        """What the page's own action carries: its Origin and the token's cookie."""
        return {"Origin": f"http://{self.host}", "Cookie": f"dpc-ui-{self.port}={self.token}",
                "Content-Type": "application/json"}

    def action(self, body: object, headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", "/api/action", headers=headers or self.page(),
                            body=json.dumps(body).encode())

    def stderr(self) -> str:
        return self.err.read_text()

    def close(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell case study, registered by the runtime, with a run of listings for DAY
    and a pipeline whose deadline is 30 h after midnight in Etc/GMT+12."""
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path_factory.mktemp("hostile") / "ws")
    (ws / "far-west").mkdir()
    (ws / "far-west" / "pipeline.yaml").write_text(WEST)
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    return ws


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[Server]:
    s = Server(workspace)
    yield s
    s.close()
    assert "Traceback" not in s.stderr(), s.stderr()


def runs(ws: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        return conn.execute("SELECT pipeline, run_id FROM lr_runs ORDER BY rowid").fetchall()
    finally:
        conn.close()


def backfill_count(ws: Path) -> int:
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        return int(conn.execute("SELECT count(*) FROM lr_backfills").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


# -- 1. DNS rebinding: a Host or Origin that is not this server ------------------------

READS = ["/", f"/?date={DAY}", f"/api/graph?date={DAY}", f"/api/statuses?date={DAY}",
         f"/api/health?date={DAY}", f"/api/pipeline?key={LISTINGS}&date={DAY}",
         "/api/events", "/static/app.js", "/favicon.ico"]


@pytest.mark.parametrize("target", READS)
def test_a_rebound_name_reads_nothing(server: Server, target: str) -> None:
    # A page of evil.example whose name now resolves to 127.0.0.1: same origin to the
    # browser, so it sends its own name as Host and Origin.
    evil = f"evil.example:{server.port}"
    reply = server.request("GET", target, host=evil, headers={"Origin": f"http://{evil}"})
    assert reply.status == 421, reply
    assert len(reply.body) < 200 and b"listings" not in reply.body
    assert server.request("GET", target, host=evil).status == 421
    # The same request to this server's own names is answered.
    for name in ("127.0.0.1", "localhost", "[::1]"):
        assert server.request("GET", target, host=f"{name}:{server.port}").status in (200, 204)


def test_a_rebound_name_queues_nothing(server: Server, workspace: Path) -> None:
    before, backfills = runs(workspace), backfill_count(workspace)
    evil = f"evil.example:{server.port}"
    headers = {**server.page(), "Origin": f"http://{evil}"}
    for body in ({"action": "rerun-downstream", "pipeline": "listings", "date": DAY},
                 {"action": "backfill", "pipeline": "listings", "from": DAY, "to": DAY}):
        reply = server.request("POST", "/api/action", host=evil, headers=headers,
                               body=json.dumps(body).encode())
        assert reply.status == 421, reply
    assert runs(workspace) == before and backfill_count(workspace) == backfills


@pytest.mark.parametrize("origin", [
    "https://127.0.0.1:{port}",  # scheme
    "http://evil.example:{port}", "http://127.0.0.1:1", "http://127.0.0.1", "null",
    "http://127.0.0.1:{port}/", "http://127.0.0.1:{port}.evil.example",
])
def test_an_origin_that_is_not_exactly_this_server_is_refused(server: Server, workspace: Path,
                                                              origin: str) -> None:
    before = runs(workspace)
    headers = {**server.page(), "Origin": origin.format(port=server.port)}
    assert server.action({"action": "run", "pipeline": "listings", "date": DAY},
                         headers).status == 403
    assert server.request("GET", f"/api/graph?date={DAY}", headers=headers).status == 403
    assert runs(workspace) == before


# -- 3. the access token -----------------------------------------------------------------

def test_an_action_needs_the_token_and_the_pages_origin(server: Server,
                                                        workspace: Path) -> None:
    before = runs(workspace)
    body = {"action": "run", "pipeline": "listings", "date": "2026-11-20"}
    no_token = {k: v for k, v in server.page().items() if k != "Cookie"}
    reply = server.action(body, no_token)
    assert reply.status == 401 and "token" in str(reply.json()["error"])
    wrong = {**server.page(), "Cookie": f"dpc-ui-{server.port}=not-the-token"}
    assert server.action(body, wrong).status == 401
    # The cookie goes with every request to this host: the page's own requests say
    # where they come from (Origin), another page's cannot.
    no_origin = {k: v for k, v in server.page().items() if k != "Origin"}
    assert server.action(body, no_origin).status == 403
    assert runs(workspace) == before
    reply = server.action(body)
    assert reply.status == 200, reply
    # A script: the token in an Authorization header (no cookie, so no Origin needed).
    script = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    assert server.action({**body, "date": "2026-11-21"}, script).status == 200
    assert len(runs(workspace)) == len(before) + 2


def test_the_token_in_the_url_becomes_a_strict_cookie_and_leaves_the_address(
        server: Server) -> None:
    reply = server.request("GET", f"/?token={server.token}&date={DAY}")
    assert reply.status == 303
    assert reply.headers["location"] == f"/?date={DAY}"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"dpc-ui-{server.port}={server.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert server.request("GET", "/?token=guessed").status == 403


def test_off_loopback_every_request_needs_the_token(workspace: Path) -> None:
    s = Server(workspace, "--host", "0.0.0.0")
    try:
        assert "warning: the UI listens on 0.0.0.0" in s.stderr()
        assert "token" in s.stderr()
        for target in ("/", f"/api/graph?date={DAY}", "/api/events", "/static/app.js"):
            reply = s.request("GET", target)
            assert reply.status == 401 and b"token" in reply.body, (target, reply)
        assert s.request("GET", f"/api/graph?date={DAY}",
                         headers={"Authorization": f"Bearer {s.token}"}).status == 200
        cookie = {"Cookie": f"dpc-ui-{s.port}={s.token}"}
        assert s.request("GET", f"/api/health?date={DAY}", headers=cookie).status == 200
        # Reached by this machine's name or an address: answered; a rebound name: not.
        for host in (socket.gethostname(), "10.1.2.3", "[fe80::1]"):
            assert s.request("GET", "/favicon.ico", host=f"{host}:{s.port}",
                             headers=cookie).status == 204, host
        assert s.request("GET", "/favicon.ico", host=f"evil.example:{s.port}",
                         headers=cookie).status == 421
    finally:
        s.close()


# -- 2 and 4: bounds, and 400s instead of 500s -------------------------------------------

def test_a_huge_body_is_refused_before_it_is_read(server: Server) -> None:
    # 400 MB announced, a few bytes sent: the answer comes at once, from the headers.
    head = (f"POST /api/action HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Origin: http://{server.host}\r\nCookie: dpc-ui-{server.port}={server.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 400000000\r\n\r\n")
    reply = server.send(head.encode() + b'{"action": "run", "pipeline": "xxxxxxxx')
    assert reply.status == 413
    chunked = server.request("POST", "/api/action", headers={
        **server.page(), "Transfer-Encoding": "chunked"}, body=b"5\r\nhello\r\n0\r\n\r\n")
    assert chunked.status == 411
    no_length = server.send(
        f"POST /api/action HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n"
        f"Origin: http://{server.host}\r\nCookie: dpc-ui-{server.port}={server.token}\r\n"
        "\r\n".encode())
    assert no_length.status == 411


def test_a_long_target_or_many_headers_are_refused(server: Server) -> None:
    assert server.request("GET", "/api/graph?date=" + "9" * 8000).status == 414
    many = {f"X-H{i}": "v" for i in range(80)}
    assert server.request("GET", "/api/graph", headers=many).status == 431


@pytest.mark.parametrize("body, words", [
    ({"action": "run", "pipeline": "x" * 10_000}, "pipeline must be NAME or ACCOUNT/NAME"),
    ({"action": "run", "pipeline": "../../etc"}, "pipeline must be"),
    ({"action": "run", "pipeline": 7}, "pipeline must be"),
    ({"action": ["run"], "pipeline": "listings"}, "unknown action"),
    ({"action": "run", "pipeline": "listings", "date": {"d": 1}}, "date must be"),
    ({"action": "run", "pipeline": "listings", "force": True}, "takes no field"),
    ({"action": "backfill", "pipeline": "listings", "from": DAY, "to": DAY,
      "downstream": "false"}, "JSON boolean"),
    ({"action": "backfill", "pipeline": "listings", "from": DAY, "to": DAY,
      "downstream": 1}, "JSON boolean"),
    ({"action": "backfill", "pipeline": "listings", "from": "2026-W48-4", "to": DAY},
     "from must be"),
    ([[[[[[[[["deep"]]]]]]]]], "nested deeper"),
])
def test_a_wrong_action_is_a_short_400(server: Server, workspace: Path, body: object,
                                       words: str) -> None:
    before, backfills = runs(workspace), backfill_count(workspace)
    reply = server.action(body)
    assert reply.status == 400, reply
    assert words in str(reply.json()["error"]) and len(reply.body) < 400
    assert runs(workspace) == before and backfill_count(workspace) == backfills


def test_a_deeply_nested_body_is_a_400(server: Server) -> None:
    for text in ("[" * 30_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "\xff\xfe"):
        reply = server.request("POST", "/api/action", headers=server.page(),
                               body=text.encode("latin-1"))
        assert reply.status == 400, reply


def test_downstream_false_is_false(server: Server, workspace: Path) -> None:
    reply = server.action({"action": "backfill", "pipeline": "listings", "from": "2026-10-01",
                           "to": "2026-10-01", "downstream": False})
    assert reply.status == 200, reply
    assert reply.json()["backfill"]["downstream"] is False  # type: ignore[index]


@pytest.mark.parametrize("target, words", [
    ("/api/log?arn=x&idx=" + "1" + "0" * 30, "idx must be"),
    ("/api/log?arn=x&idx=-1", "idx must be"),
    ("/api/log?arn=x&idx=0&offset=1e9", "offset must be"),
    ("/api/log?idx=0", "arn is required"),
    ("/api/graph?date=2026-02-30", "not a day"),
    ("/api/health?date=26-11-2026", "date must be YYYY-MM-DD"),
    ("/?date=%00", "date must be"),
    ("/api/pipeline?key=" + "a" * 3000, "key must be ACCOUNT/NAME"),
    ("/api/pipeline?date=2026-11-26", "key is required"),
])
def test_a_wrong_query_is_a_400_with_a_message(server: Server, target: str,
                                               words: str) -> None:
    reply = server.request("GET", target)
    assert reply.status == 400, reply
    assert words in str(reply.json()["error"])


def test_health_on_the_last_day_of_the_calendar(server: Server) -> None:
    # far-west's deadline, 30 h after midnight of 9999-12-31 at UTC-12, is after year 9999.
    reply = server.request("GET", "/api/health?date=9999-12-31")
    assert reply.status == 200, reply
    items = {i["key"]: i for i in reply.json()["items"]}  # type: ignore[attr-defined]
    assert items["777777777777/far-west"]["late"] is False
    assert server.request("GET", "/api/health?date=0001-01-01").status == 200


def test_a_deadline_past_the_calendar_is_a_deadline_error() -> None:
    from dpc_core.deadlines import DeadlineError, deadline_at

    with pytest.raises(DeadlineError, match="outside the years 1 to 9999"):
        deadline_at("+30h", "9999-12-31", "Etc/GMT+12")
    with pytest.raises(DeadlineError, match="outside the years"):
        deadline_at("+1h", "0001-01-01", "Etc/GMT-14")
    assert deadline_at("+30h", "9999-12-30", "Etc/GMT+12").isoformat() == \
        "9999-12-31T18:00:00+00:00"


# -- 5. live streams: capped, one watch ----------------------------------------------------

def _state_fds(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    n = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd).endswith(".dpc/state.db"):
                n += 1
        except OSError:
            continue
    return n


class RawStream:
    """A page's live stream on its own socket: its events as they come."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        self.seen = b""
        self.wait_for("hello")

    def wait_for(self, event: str) -> None:
        mark = f"event: {event}\n".encode()
        while mark not in self.seen:
            chunk = self.sock.recv(4096)
            assert chunk, f"the stream closed before {event!r}: {self.seen[-300:]!r}"
            self.seen += chunk
        self.seen = self.seen.split(mark, 1)[1]

    def close(self) -> None:
        self.sock.close()


def test_streams_are_capped_and_share_one_watch(workspace: Path) -> None:
    s = Server(workspace)
    streams: list[RawStream] = []
    try:
        base = _state_fds(s.proc.pid)
        streams = [RawStream(s) for _ in range(16)]
        assert _state_fds(s.proc.pid) <= base + 1  # one connection for the 16
        refused = s.request("GET", "/api/events")
        assert refused.status == 503 and b"16 live pages" in refused.body
        dpc("local", "start", "listings", "--date", "2026-11-25", "-w", workspace)
        for stream in streams:  # the one watch tells every page
            stream.wait_for("change")
        streams.pop().close()
        end = time.monotonic() + 30
        while (reply := s.request("GET", "/api/events")).status == 503:
            assert time.monotonic() < end, "a closed stream never freed its place"
            time.sleep(0.1)
        assert reply.status == 200
    finally:
        for stream in streams:
            stream.close()
        s.close()
    assert "Traceback" not in s.stderr()


# -- 6. one-line errors of the commands ----------------------------------------------------

def _fails(*args: object) -> str:
    proc = subprocess.run([DPC, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ")
    return proc.stderr


def test_a_port_in_use_or_an_address_not_of_this_machine_is_one_line(workspace: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _fails("ui", "-w", workspace, "--port", port)
        assert f"cannot listen on 127.0.0.1:{port}" in err and "in use" in err
        err = _fails("local", "up", "--ui", "--until-idle", "--no-schedule", "-w", workspace,
                     "--port", port)
        assert f"cannot listen on 127.0.0.1:{port}" in err
    err = _fails("ui", "-w", workspace, "--host", "nosuch.invalid", "--port", "0")
    assert "--host nosuch.invalid: cannot resolve" in err
    err = _fails("ui", "-w", workspace, "--host", "203.0.113.9", "--port", "0")
    assert "cannot listen on 203.0.113.9:0" in err


def test_a_corrupt_state_db_is_one_line_and_left_untouched(workspace: Path,
                                                           tmp_path: Path) -> None:
    ws = copy_workspace(workspace, tmp_path / "ws")
    db = ws / ".dpc" / "state.db"
    db.parent.mkdir()
    src = sqlite3.connect(workspace / ".dpc" / "state.db")
    (tmp_path / "whole.db").unlink(missing_ok=True)
    src.execute(f"VACUUM INTO '{tmp_path / 'whole.db'}'")
    src.close()
    copy = sqlite3.connect(tmp_path / "whole.db")  # a WAL file, as state.db always is
    copy.execute("PRAGMA journal_mode=WAL")
    copy.close()
    whole = (tmp_path / "whole.db").read_bytes()
    for broken in (whole[: len(whole) // 2], b"SQLite format 3\x00" + b"\x07" * 300,
                   os.urandom(5000)):
        db.write_bytes(broken)
        for args in (["local", "runs"], ["local", "up", "--until-idle", "--no-schedule"],
                     ["runs"], ["ui", "--port", "0"]):
            err = _fails(*args, "-w", ws)
            assert f"state.db at {db} is not a dpc database or is corrupt" in err, err
            assert db.read_bytes() == broken
    # A whole file whose tables are damaged (the schema is not): met by a read, after
    # the file was opened.
    conn = sqlite3.connect(tmp_path / "whole.db")
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in conn.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE rootpage > 1")]
    conn.close()
    pages = bytearray(whole)
    for root in roots:
        pages[(root - 1) * size:root * size] = b"\xff" * size
    broken = bytes(pages)
    for args in (["local", "runs"], ["local", "up", "--until-idle", "--no-schedule"]):
        db.write_bytes(broken)
        err = _fails(*args, "-w", ws)
        assert f"state.db at {db} is not a dpc database or is corrupt" in err, err
        assert db.read_bytes() == broken
    # Only the table the runtime reads when it asks whether it is idle: met while serving.
    held = roots[names.index("lr_backfill_held")]
    pages = bytearray(whole)
    pages[(held - 1) * size:held * size] = b"\xff" * size
    db.write_bytes(bytes(pages))
    err = _fails("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert f"state.db at {db} is not a dpc database or is corrupt" in err, err
    assert db.read_bytes() == bytes(pages)


def test_lineage_to_a_full_disk_is_one_line(workspace: Path) -> None:
    err = _fails("lineage", "-w", workspace, "--output", "/dev/full")
    assert err == "error: cannot write /dev/full: No space left on device\n"


# -- property: generated hostile requests ------------------------------------------------

TRIED = {"requests": 0}
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)


@st.composite
def hostile_requests(draw: st.DrawFn, port: int, token: str) -> tuple[bytes, bool]:
    """A request and whether its Host and Origin are this server's."""
    own = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]
    host = draw(st.one_of(st.sampled_from(own), st.sampled_from([
        f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"localhost.:{port}",
        f"127.0.0.1:{port}@evil", f"0x7f.1:{port}", f"127.1:{port}", ""]), _printable))
    origin = draw(st.one_of(st.none(), st.sampled_from(
        [f"http://{h}" for h in own] + [f"https://127.0.0.1:{port}", f"http://evil:{port}",
                                        "null", f"http://127.0.0.1:{port}/x"]), _printable))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH",
                                   "get", "TRACE"]))
    path = draw(st.one_of(st.sampled_from(["/", "/api/graph", "/api/statuses", "/api/health",
                                           "/api/pipeline", "/api/log", "/api/action",
                                           "/api/events", "/static/app.js", "/static/../x",
                                           "/favicon.ico", "/nope", "//api/graph"]),
                          _printable.map(lambda t: "/" + t.replace(" ", "%20"))))
    params = draw(st.dictionaries(
        st.sampled_from(["date", "key", "idx", "offset", "arn", "token", "n", "x"]),
        st.one_of(st.sampled_from([DAY, "9999-12-31", "0001-01-01", "2026-02-30", LISTINGS,
                                   "1" + "0" * 30, "-1", token, "", "%00", "%ff"]),
                  st.integers(-10**40, 10**40).map(str),
                  _printable.map(lambda t: t.replace(" ", "+").replace("#", "%23"))),
        max_size=4))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    value = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(
        ["run", "rerun", "rerun-downstream", "backfill", "listings", LISTINGS, DAY, "false",
         "x" * 300]), _printable)
    body_obj = draw(st.one_of(st.fixed_dictionaries({}, optional={
        k: value for k in ("action", "pipeline", "date", "from", "to", "downstream", "zz")}),
        st.recursive(value, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_printable, inner, max_size=3), max_leaves=8)))
    body = draw(st.one_of(st.none(), st.just(json.dumps(body_obj).encode()),
                          st.binary(max_size=200),
                          st.integers(1, 3000).map(lambda n: b"[" * n)))
    credentials = draw(st.sampled_from(["none", "cookie", "bearer", "query", "wrong"]))
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1"]
    if host or draw(st.booleans()):
        lines.append(f"Host: {host}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if credentials == "cookie":
        lines.append(f"Cookie: dpc-ui-{port}={token}")
    elif credentials == "bearer":
        lines.append(f"Authorization: Bearer {token}")
    elif credentials == "wrong":
        lines.append(f"Authorization: Bearer {token[:-1]}")
    if credentials == "query":
        lines[0] = lines[0].replace(" HTTP/1.1", ("&" if query else "?") + f"token={token}"
                                    + " HTTP/1.1")
    lines.append("Content-Type: " + draw(st.sampled_from(["application/json", "text/plain"])))
    lines.append("Connection: close")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    allowed_origin = origin is None or origin in [f"http://{h}" for h in own]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    return raw, host in own and allowed_origin


def test_generated_hostile_requests(workspace: Path) -> None:
    s = Server(workspace)
    try:
        @settings(max_examples=700, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(hostile_requests(s.port, s.token))
        def check(case: tuple[bytes, bool]) -> None:
            raw, ours = case
            try:
                reply = s.send(raw, timeout=30)
            except AssertionError:  # no HTTP status line: the connection was closed
                assert s.proc.poll() is None
                return
            finally:
                TRIED["requests"] += 1
            assert reply.status != 500, (raw[:300], reply)
            assert b"Traceback" not in reply.body and b'File "' not in reply.body
            if not ours:
                assert not 200 <= reply.status < 400, (raw[:300], reply)
            assert s.proc.poll() is None

        check()
        # Still up and answering.
        assert s.request("GET", f"/api/graph?date={DAY}").status == 200
    finally:
        s.close()
    print(f"\n{TRIED['requests']} generated requests")
    assert TRIED["requests"] >= 700
    assert "Traceback" not in s.stderr() and "Exception in ASGI" not in s.stderr(), s.stderr()


def test_a_name_far_too_long_is_refused_without_nearest_names(workspace: Path) -> None:
    from dpc_core.errors import UnknownPipeline
    from dpc_core.local.runtime import Workspace

    ws = Workspace(workspace)
    with pytest.raises(UnknownPipeline) as err:
        ws.resolve(ws.keys(), "listings" * 100_000)
    assert len(str(err.value)) < 1000 and "did you mean" not in str(err.value)
    with pytest.raises(UnknownPipeline, match="did you mean 'listings'"):
        ws.resolve(ws.keys(), "listing")
