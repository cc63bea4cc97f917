"""Watch the local runtime's real Slack, email and OpsGenie deliveries on this machine.

    python tests/fakes/serve.py

starts the fakes the tests use (they speak the real protocols: the real slack-sdk, smtplib
and opsgenie-sdk talk to them), prints the ``export`` lines that point dpc at them, then
one line per message received, until Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack
from fakes.smtp_server import FakeSmtp

TOKEN = "xoxb-local-watch-token"
KEY = "local-watch-opsgenie-key"


def main() -> None:
    """Serve until interrupted, printing what arrives."""
    with FakeSlack(token=TOKEN) as slack, FakeSmtp() as smtp, FakeOpsGenie(api_key=KEY) as og:
        print(f"export SLACK_BOT_TOKEN={TOKEN} DPC_SLACK_API_URL={slack.api_url}")
        print(f"export DPC_SMTP_HOST={smtp.host} DPC_SMTP_PORT={smtp.port}")
        print(f"export OPSGENIE_API_KEY={KEY} DPC_OPSGENIE_API_URL={og.url}", flush=True)
        seen = [0, 0, 0]
        try:
            while True:
                time.sleep(0.2)
                calls = [(m, b) for m, b in slack.state.calls]
                for method, body in calls[seen[0]:]:
                    where = body.get("channel", "")
                    thread = " (in thread)" if body.get("thread_ts") else ""
                    print(f"slack    {method} {where}{thread}: {body.get('text', '')}")
                emails = smtp.received
                for m in emails[seen[1]:]:
                    print(f"email    to {', '.join(m.rcpt_tos)}: {m.message['Subject']}")
                og_calls = og.calls()
                for method, path, body in og_calls[seen[2]:]:
                    what = body.get("message") or body.get("note") or ""
                    print(f"opsgenie {method} {path}: {what}")
                seen = [len(calls), len(emails), len(og_calls)]
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass  # Ctrl-C: the with block stops the servers


if __name__ == "__main__":
    main()
