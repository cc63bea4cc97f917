"""Time of `dpc synth` for the case study, and the marginal cost per extra pipeline.

Run: ``.venv/bin/python bench/synth.py [--sizes 10 50] [--no-nag] [--repeats N]``.
Prints seconds: one pipeline's stack (``listings``) beside a bare CDK app that declares
the same resources by hand (``bench/synth_bare.py``); rounds alternate the two after a
warm-up of each, and it prints the best of each and the median of the rounds' ratios
(which the machine's moment-to-moment speed moves less); target: dpc within 1.2x of bare.
Then the case study (4 pipeline stacks, one app, cdk-nag on), apps of N copies of
``listings`` (spark on EMR) and the marginal time per extra pipeline between sizes
(target: 0.2 s). The first figure includes loading aws_cdk/jsii (paid once per `dpc`
process). Nearly all synth time is waiting on jsii round trips, so it prints their
count too: a figure the machine's load does not move.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"


#: Round trips to the jsii Node process so far (see ``_count_round_trips``).
TRIPS = [0]


def _count_round_trips() -> None:
    """Count every request Python sends the jsii Node process: nearly all synth time is
    spent waiting on them (cProfile: readline), and the count is a figure the machine's
    load does not move."""
    from jsii._kernel.providers import process

    send = process._NodeProcess.send

    def counted(self: object, *args: object, **kwargs: object) -> object:
        TRIPS[0] += 1
        return send(self, *args, **kwargs)  # type: ignore[arg-type]

    process._NodeProcess.send = counted  # type: ignore[method-assign,assignment]


def _timed(pipelines: list, out: Path, nag: bool) -> float:
    from dpc_central.app import pipeline_app

    t0 = time.perf_counter()
    pipeline_app(pipelines, outdir=out, region="eu-west-1", nag=nag).synth()
    return time.perf_counter() - t0


def _one_vs_bare(listings: object, project: Path, work: Path, repeats: int) -> None:
    """dpc's stack for one pipeline and the bare app with the same resources, interleaved
    so the machine's load moves both alike; the first round of each is a warm-up."""
    from synth_bare import bare_app

    from dpc_central.app import pipeline_stack_name

    name = pipeline_stack_name(listings)
    dpc_s: list[float] = []
    bare_s: list[float] = []
    trips: dict[str, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    params: dict[str, int] = {}
    refs: dict[str, int] = {}
    for r in range(repeats + 1):
        out = work / f"one-{r}"
        before = TRIPS[0]
        s = _timed([listings], out, nag=False)
        trips["dpc"] = TRIPS[0] - before
        template = json.loads((out / f"{name}.template.json").read_text())
        before = TRIPS[0]
        t0 = time.perf_counter()
        bare_app(template, scripts=project / "listings" / "jobs", outdir=work / f"bare-{r}",
                 account="111111111111", region="eu-west-1").synth()
        b = time.perf_counter() - t0
        trips["bare"] = TRIPS[0] - before
        if r:
            dpc_s.append(s)
            bare_s.append(b)
        bare_tpl = json.loads((work / f"bare-{r}" / "bare-pipeline.template.json").read_text())
        for label, tpl in (("dpc", template), ("bare", bare_tpl)):
            params[label] = len(tpl.get("Parameters", {}))
            text = json.dumps(tpl["Resources"])
            refs[label] = sum(text.count(f'"{f}"') for f in ("Ref", "Fn::Join", "Fn::GetAtt"))
            kinds[label] = {}
            for res in tpl["Resources"].values():
                kinds[label][res["Type"]] = kinds[label].get(res["Type"], 0) + 1
    nag_s = _timed([listings], work / "one-nag", nag=True)
    d, b = min(dpc_s), min(bare_s)
    paired = statistics.median(x / y for x, y in zip(dpc_s, bare_s, strict=True))
    print(f"one pipeline (listings), best of {repeats}: dpc {d:6.3f} s (nag off), "
          f"{nag_s:6.2f} s (nag on, once) | bare CDK app, same resources: {b:6.3f} s | "
          f"dpc/bare {d / b:4.2f}x best, {paired:4.2f}x median of the rounds' ratios "
          "(target <= 1.2x)")
    print(f"  jsii round trips: dpc {trips['dpc']}, bare {trips['bare']} "
          f"({trips['dpc'] / trips['bare']:4.2f}x)")
    print(f"  resources: dpc {sum(kinds['dpc'].values())}, bare {sum(kinds['bare'].values())};"
          f" kinds only one has: {sorted(set(kinds['dpc']) ^ set(kinds['bare'])) or 'none'}; "
          f"parameters: dpc {params['dpc']}, bare {params['bare']}; tokens resolved at synth "
          f"(Ref/Fn::Join/Fn::GetAtt): dpc {refs['dpc']}, bare {refs['bare']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 50])
    parser.add_argument("--no-nag", action="store_true", help="synth without cdk-nag")
    parser.add_argument("--case-study", type=Path, default=CASE_STUDY)
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed rounds of the one-pipeline comparison")
    args = parser.parse_args()
    nag = not args.no_nag

    t0 = time.perf_counter()
    from dpc_central.common.cdk_env import prepare_jsii
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    prepare_jsii()
    import aws_cdk  # noqa: F401 - measured separately: paid once per process

    _count_round_trips()

    import_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="dpc-bench-"))
    try:
        project = case_study_project(args.case_study, work / "case")
        case = load_pipelines([project])
        print(f"import aws_cdk (once per process): {import_s:6.2f} s")
        _one_vs_bare(next(p for p in case if p.name == "listings"), project, work,
                     args.repeats)
        case_s = _timed(case, work / "out-case", nag)
        print(f"case study, {len(case)} pipelines (nag={'on' if nag else 'off'}): "
              f"{case_s:6.2f} s")
        listings = next(p for p in case if p.name == "listings")
        results = []
        for n in args.sizes:
            copies = [listings.model_copy(update={"name": f"listings-{i:03d}"}) for i in range(n)]
            before = TRIPS[0]
            s = _timed(copies, work / f"out-{n}", nag)
            results.append((n, s))
            print(f"{n:4d} pipelines in one app: {s:7.2f} s  ({s / n:5.2f} s per pipeline, "
                  f"{(TRIPS[0] - before) / n:5.0f} jsii round trips per pipeline)")
        for (n1, s1), (n2, s2) in itertools.pairwise(results):
            print(f"marginal time per extra pipeline ({n1}->{n2}): {(s2 - s1) / (n2 - n1):5.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
