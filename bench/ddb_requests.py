"""DynamoDB requests per status event, counted under moto with botocore's event hooks.

Target (issue 3): at most ``3 + 2·c`` requests per event, c = the number of children
that reference the event's pipeline. Prints the distribution of requests per event,
the requests per operation, and how many events exceed the budget (target: none).

    python bench/ddb_requests.py [--pipelines 80] [--accounts 8] [--days 1] [--seed 1]

Exit status 1 when an event exceeds the budget. The request counts do not depend on
the size of the organisation (only on c), so the defaults stay small: moto spends several
milliseconds per request (its Query walks the whole table).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any

REGION = "eu-west-1"
DAY0_MS = 1_795_651_200_000  # 2026-11-26T00:00Z
DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def make_org(rng: random.Random, n: int, m: int) -> list[Any]:
    """``n`` pipelines over ``m`` accounts in three layers: a third are roots, the rest
    depend on 1–4 pipelines of earlier layers (allOf, anyOf, nested, both operators)."""
    from dpc_core.store import PipelineSpec, pkey

    accounts = [f"{200000000000 + i * 7919:012d}" for i in range(m)]
    specs: list[PipelineSpec] = []
    for i in range(n):
        account, name = accounts[i % m], f"p{i:05d}"
        if i < n // 3:
            specs.append(PipelineSpec(account=account, name=name))
            continue
        parents = rng.sample(specs[: max(1, i * 2 // 3)], rng.randint(1, 4))

        def ref(p: PipelineSpec) -> dict[str, Any]:
            return {"name": p.name, "account": p.account,
                    "status": ["SUCCEEDED"] if rng.random() < 0.9 else ["FAILED", "TIMED_OUT"]}

        shape = rng.random()
        if shape < 0.5 or len(parents) == 1:
            cond: dict[str, Any] = {"allOf": [ref(p) for p in parents]}
        elif shape < 0.75:
            cond = {"anyOf": [ref(p) for p in parents]}
        else:
            cut = len(parents) // 2
            cond = {"allOf": [ref(p) for p in parents[:cut]],
                    "anyOf": [ref(p) for p in parents[cut:]],
                    "operator": rng.choice(["AND", "OR"])}
        specs.append(PipelineSpec(
            account=account, name=name, condition=cond,
            rerun=rng.choice(["never", "never", "on-new-parent-run"]),
            parents=tuple(dict.fromkeys(pkey(p.account, p.name) for p in parents))))
    return specs


def make_stream(rng: random.Random, specs: list[Any], days: int) -> list[dict[str, Any]]:
    """Every pipeline runs once a day (layer order); some fail, some are retried or
    redriven; 10 % of events are delivered twice; a few are spoofed."""
    from dpc_core.events import make_status_event

    out: list[dict[str, Any]] = []
    for day in range(days):
        for spec in specs:
            start = DAY0_MS + day * DAY_MS + rng.randrange(20) * HOUR_MS

            def ev(ex: str, status: str, st: int, rc: int = 0, spec: Any = spec
                   ) -> dict[str, Any]:
                return make_status_event(account=spec.account, region=REGION,
                                         pipeline=spec.name, execution=ex, status=status,
                                         start_ms=st, redrive_count=rc,
                                         stop_ms=None if status == "RUNNING" else st + 60_000,
                                         event_id=uuid.uuid4().hex)

            r = rng.random()
            ex = f"d{day}"
            if r < 0.75:
                events = [ev(ex, "RUNNING", start), ev(ex, "SUCCEEDED", start)]
            elif r < 0.85:
                events = [ev(ex, "RUNNING", start), ev(ex, "FAILED", start),
                          ev(ex + "-b", "RUNNING", start + HOUR_MS),
                          ev(ex + "-b", "SUCCEEDED", start + HOUR_MS)]
            elif r < 0.95:
                events = [ev(ex, "RUNNING", start), ev(ex, "TIMED_OUT", start),
                          ev(ex, "RUNNING", start, 1), ev(ex, "SUCCEEDED", start, 1)]
            else:
                events = [ev(ex, "RUNNING", start), ev(ex, "FAILED", start)]
            for e in events:
                out.append(e)
                if rng.random() < 0.10:
                    out.append(e)
        spoofed = dict(out[-1], account="999999999999")
        out.append(spoofed)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures; 1 when an event went over budget."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=80)
    ap.add_argument("--accounts", type=int, default=8)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import boto3
    from moto import mock_aws

    from dpc_core.engine import Engine
    from dpc_core.events import StatusEvent
    from dpc_core.store import pkey
    from dpc_core.stores.dynamodb import DynamoStore, create_tables

    rng = random.Random(args.seed)
    specs = make_org(rng, args.pipelines, args.accounts)
    children: Counter[str] = Counter(p for s in specs for p in s.parents)
    stream = make_stream(rng, specs, args.days)

    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        store = DynamoStore(client, create_tables(client, "bench-"))
        for spec in specs:  # acyclic by construction: no need for the engine's cycle check
            store.put_pipeline(spec)
        engine = Engine(store)

        calls: list[str] = []

        def count(event_name: str, **_: Any) -> None:
            calls.append(event_name.rsplit(".", 1)[-1])

        client.meta.events.register("before-call.dynamodb.*", count)

        per_event: Counter[int] = Counter()
        over_by: Counter[int] = Counter()
        by_op: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        worst: tuple[int, int, str] = (0, 0, "")
        decisions = 0
        t0 = time.perf_counter()
        for raw in stream:
            calls.clear()
            event = StatusEvent.parse(raw)
            out = engine.handle(event)
            key = pkey(event.account, event.pipeline)
            c = children[key]
            n = len(calls)
            per_event[n] += 1
            by_op.update(calls)
            decisions += len(out.decisions)
            outcomes["rejected" if out.rejected else
                     out.recorded.value if out.recorded else "skipped"] += 1
            if n > 3 + 2 * c:
                over_by[n - (3 + 2 * c)] += 1
            if n - 2 * c > worst[0] - 2 * worst[1] or not worst[2]:  # the tightest event
                worst = (n, c, key)
        elapsed = time.perf_counter() - t0

    total = sum(per_event.values())
    fanout = Counter(children[pkey(s.account, s.name)] for s in specs)
    print(f"org: {len(specs)} pipelines over {args.accounts} accounts; children per pipeline "
          f"(c): " + ", ".join(f"{c}:{n}" for c, n in sorted(fanout.items())))
    print(f"stream: {total} events over {args.days} day(s) "
          f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}); "
          f"{decisions} decisions; {elapsed:.1f} s under moto")
    print("requests per event: count")
    for n, k in sorted(per_event.items()):
        print(f"  {n:3d}: {k:5d} {'#' * max(1, round(60 * k / total))}")
    print("requests by operation: " + ", ".join(f"{op} {n}" for op, n in by_op.most_common()))
    mean = sum(n * k for n, k in per_event.items()) / total
    print(f"mean {mean:.2f} requests/event; tightest event: {worst[0]} requests with "
          f"c={worst[1]}, budget {3 + 2 * worst[1]} ({worst[2]})")
    exceeding = sum(over_by.values())
    print(f"events over the budget 3 + 2·c: {exceeding} of {total}"
          + (f" (over by: {dict(sorted(over_by.items()))})" if exceeding else ""))
    return 1 if exceeding else 0


if __name__ == "__main__":
    sys.exit(main())
