"""CPU seconds a function's cold start spends before its first event: imports, AWS clients, face models.

Every function worker the local stack starts pays this (each stack starts a first worker of every function; in one
`make test`, 45 collect and 32 normalize workers took a first invocation), and so does every Lambda cold start.
Each row runs in a fresh interpreter, and is the median of `--runs`:

- imports: the function's `app.py` with everything it imports (powertools, pydantic, boto3 and, for normalize
  and collect, the imaging and face modules);
- clients: the AWS clients the container builds (S3 for R2, DynamoDB table and client, SQS, SSM);
- face models: the HOG detector (normalize, collect) and the YuNet and SFace sessions (collect).

Baseline: a fresh clone at 67a7fb3, where pip had compiled the dependencies' bytecode but nothing compiled ours (the
machine sets PYTHONDONTWRITEBYTECODE, so no process ever wrote it), every client came from a session of its own, and
dlib built its HOG detector from the text it embeds. The baseline rows recreate exactly those three things: a
PYTHONPYCACHEPREFIX holding the bytecode of the standard library and site-packages only (so our modules are
compiled from source in every process), a boto3 session per client, and `dlib.get_frontal_face_detector()`.
(Without any bytecode, as a uv install without --compile-bytecode leaves it, collect's imports cost 3.3 CPU s.)

Run: `python benchmarks/cold_start.py [--runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("api", "webhook", "dispatch", "normalize", "collect", "reconcile", "expiry_sweep")
FACES = {"normalize": ("detector",), "collect": ("detector", "recognizer")}

# Runs in the fresh interpreter: argv[1] function, argv[2] "now" or "baseline"; prints {step: CPU s}.
PROBE = r"""
import json, os, sys, time
function, variant = sys.argv[1], sys.argv[2]
spent, started = {}, time.process_time()
def lap(step):
    global started
    now = time.process_time(); spent[step] = now - started; started = now
import importlib.util
spec = importlib.util.spec_from_file_location("app", f"functions/{function}/app.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
lap("imports")
from portrait_studio.adapters import aws
if variant == "baseline":
    import boto3
    for service in ("s3", "dynamodb", "sqs", "ssm"):
        boto3.session.Session().client(service, region_name="us-east-1")
    boto3.session.Session().resource("dynamodb", region_name="us-east-1")
else:
    for service in ("s3", "dynamodb", "sqs", "ssm"):
        aws.aws_client(service, "us-east-1", None)
    aws.aws_resource("dynamodb", "us-east-1", None)
lap("clients")
faces = sys.argv[3].split(",") if len(sys.argv) > 3 else []
if "detector" in faces:
    import dlib
    from portrait_studio.services import faces as gate
    if variant == "baseline":
        dlib.get_frontal_face_detector()
    else:
        gate._detector()
if "recognizer" in faces:
    from portrait_studio.services import face_recognizer as fr
    fr._session(str(fr.MODELS_DIR / fr.YUNET_MODEL)); fr._session(str(fr.MODELS_DIR / fr.SFACE_MODEL))
lap("face models")
print(json.dumps(spent))
"""


def dependencies_only_bytecode(cache: str) -> None:
    """The standard library's and site-packages' bytecode under `cache` (a PYTHONPYCACHEPREFIX), none of ours."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    for tree in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}:
        # Bytecode a tree cannot compile (test files written for other versions) is left out; that is what pip does.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", tree], env=env, capture_output=True)


def probe(function: str, variant: str, baseline_cache: str) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if variant == "baseline":
        env["PYTHONPYCACHEPREFIX"] = baseline_cache  # the dependencies' bytecode only: ours compiled each time
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-c", PROBE, function, variant, ",".join(FACES.get(function, ()))]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "shared", "functions"], cwd=ROOT, check=True)
    print(f"\nCPU seconds of one cold start before its first event (median of {args.runs}; baseline: 67a7fb3)\n")
    print(f"{'function':14} {'imports':>15} {'clients':>15} {'face models':>15} {'total':>15} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as baseline_cache:
        dependencies_only_bytecode(baseline_cache)
        for function in FUNCTIONS:
            rows = {v: [probe(function, v, baseline_cache) for _ in range(args.runs)] for v in ("baseline", "now")}
            cells, totals = [], {}
            for step in ("imports", "clients", "face models"):
                base, now = (statistics.median(r[step] for r in rows[v]) for v in ("baseline", "now"))
                cells.append(f"{now:6.2f} / {base:6.2f}")
            for v in ("baseline", "now"):
                totals[v] = statistics.median(sum(r.values()) for r in rows[v])
            cells.append(f"{totals['now']:6.2f} / {totals['baseline']:6.2f}")
            print(
                f"{function:14} " + " ".join(f"{c:>15}" for c in cells) + f" {totals['now'] / totals['baseline']:6.2f}"
            )
    print("\n(each cell: now / baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
