"""Time of `dpc synth` for the case study, and the marginal cost per extra pipeline.

Run: ``.venv/bin/python bench/synth.py [--sizes 10 50] [--no-nag]``. Prints seconds:
the case study (4 pipeline stacks, one app, cdk-nag on), then apps of N copies of
``listings`` (spark on EMR) and the marginal time per extra pipeline between sizes.
The first figure includes loading aws_cdk/jsii (paid once per `dpc` process).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"


def _timed(pipelines: list, out: Path, nag: bool) -> float:
    from dpc_central.app import pipeline_app

    t0 = time.perf_counter()
    pipeline_app(pipelines, outdir=out, region="eu-west-1", nag=nag).synth()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 50])
    parser.add_argument("--no-nag", action="store_true", help="synth without cdk-nag")
    parser.add_argument("--case-study", type=Path, default=CASE_STUDY)
    args = parser.parse_args()
    nag = not args.no_nag

    t0 = time.perf_counter()
    from dpc_central.common.cdk_env import prepare_jsii
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    prepare_jsii()
    import aws_cdk  # noqa: F401 - measured separately: paid once per process

    import_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="dpc-bench-"))
    try:
        project = case_study_project(args.case_study, work / "case")
        case = load_pipelines([project])
        case_s = _timed(case, work / "out-case", nag)
        print(f"import aws_cdk (once per process): {import_s:6.2f} s")
        print(f"case study, {len(case)} pipelines (nag={'on' if nag else 'off'}): "
              f"{case_s:6.2f} s")
        listings = next(p for p in case if p.name == "listings")
        results = []
        for n in args.sizes:
            copies = [listings.model_copy(update={"name": f"listings-{i:03d}"}) for i in range(n)]
            s = _timed(copies, work / f"out-{n}", nag)
            results.append((n, s))
            print(f"{n:4d} pipelines in one app: {s:7.2f} s  ({s / n:5.2f} s per pipeline)")
        for (n1, s1), (n2, s2) in itertools.pairwise(results):
            print(f"marginal time per extra pipeline ({n1}->{n2}): {(s2 - s1) / (n2 - n1):5.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
