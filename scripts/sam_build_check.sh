#!/usr/bin/env bash
# Builds the SAM application the way a deploy would (no Docker, no local python3.12) and checks the result:
#   1. `sam build` succeeds with the makefile build methods (layers/deps/Makefile, functions/*/Makefile);
#   2. the SharedLayer holds python/portrait_studio/__init__.py;
#   3. the DepsLayer holds only aarch64 wheels for cp312 (or abi3 / py3-none) or pure Python - every ELF
#      object is aarch64;
#   4. every function artifact has its app.py;
#   5. the SharedLayer holds python/portrait_studio/face_models/ with exactly the two .onnx models (YuNet,
#      SFace with int8 weights), dlib's HOG detector saved (.svm) and their NOTICE.md, and the DepsLayer no face_models/ (dlib's .dat models are gone);
#      layers + the largest function stay under Lambda's 250 MB unzipped limit (sizes printed);
#   6. the template, once translated by the SAM translator, passes cfn-lint (cfn-lint alone validates the
#      SAM template without translating it, so it cannot see e.g. a dependency cycle through HttpApi's routes).
#
# aws-sam-cli lives in its own venv (.venv-sam): its dependency pins conflict with the project's.
# Usage: scripts/sam_build_check.sh            (BUILD_DIR defaults to /tmp/samtest/.aws-sam)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAM_VENV="${SAM_VENV:-$ROOT/.venv-sam}"
SAM_VERSION="${SAM_VERSION:-1.170.0}"
BUILD_DIR="${BUILD_DIR:-/tmp/samtest/.aws-sam}"
LINT="${LINT:-$ROOT/.venv/bin/cfn-lint}"

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

if [[ ! -x "$SAM_VENV/bin/sam" ]]; then
    echo "== creating $SAM_VENV with aws-sam-cli==$SAM_VERSION"
    python3 -m venv "$SAM_VENV"
    "$SAM_VENV/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION"
fi
if [[ ! -x "$LINT" ]]; then
    LINT="$SAM_VENV/bin/cfn-lint"
fi

echo "== sam build -> $BUILD_DIR"
rm -rf "$BUILD_DIR"
mkdir -p "$(dirname "$BUILD_DIR")"
(cd "$ROOT" && "$SAM_VENV/bin/sam" build --template-file template.yaml --build-dir "$BUILD_DIR" --no-cached)

echo "== inspecting the artifacts"
"$SAM_VENV/bin/python" - "$BUILD_DIR" <<'PY'
import sys
from pathlib import Path

build = Path(sys.argv[1])
problems: list[str] = []

shared = build / "SharedLayer" / "python" / "portrait_studio"
if not (shared / "__init__.py").is_file():
    problems.append(f"{shared}/__init__.py is missing: the shared package did not land at python/portrait_studio/")

deps = build / "DepsLayer" / "python"
EM_AARCH64 = 183
elf_total = 0
for path in deps.rglob("*"):
    if not path.is_file() or path.is_symlink():
        continue
    with path.open("rb") as fh:
        head = fh.read(20)
    if head[:4] != b"\x7fELF":
        continue
    elf_total += 1
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    if machine != EM_AARCH64:
        problems.append(f"{path.relative_to(build)} is an ELF object for machine {machine}, not aarch64")
if not list(deps.glob("PIL/*aarch64*.so")):
    problems.append("no aarch64 extension module in DepsLayer/python/PIL")
if elf_total == 0:
    problems.append("DepsLayer has no native code at all - was it built?")

for wheel in deps.glob("*.dist-info/WHEEL"):
    tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
    for tag in tags:
        py, abi, plat = tag.split("-")
        native = plat != "any"
        # Native wheels: built for cp312; stable-ABI (abi3) from an older CPython 3 (cryptography's cp311-abi3);
        # or py3-none-<platform>, a native library loaded through ctypes, no Python ABI (c2pa-python).
        python_ok = (
            (py == "cp312" and abi == "cp312")
            or (abi == "abi3" and py.startswith("cp3") and int(py[3:]) <= 12)
            or (py == "py3" and abi == "none")
        )
        if native and not ("aarch64" in plat and python_ok):
            problems.append(f"{wheel.parent.name}: wheel tag {tag} is not cp312 aarch64")
        if not native and abi != "none":
            problems.append(f"{wheel.parent.name}: unexpected pure wheel tag {tag}")

functions = [d for d in build.iterdir() if d.is_dir() and d.name.endswith("Function")]
for fn in sorted(functions):
    if not (fn / "app.py").is_file():
        problems.append(f"{fn.name} has no app.py")
if len(functions) != 7:
    problems.append(f"expected 7 function artifacts, found {len(functions)}: {sorted(f.name for f in functions)}")


def size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


# The face models ship with the package in the SharedLayer: exactly the two onnxruntime runs, dlib's saved HOG
# detector, and their notice.
face_models = shared / "face_models"
WANTED_MODELS = {"face_detection_yunet_2023mar.onnx", "face_recognition_sface_2021dec_int8w.onnx",
                 "dlib_frontal_face_detector.svm", "NOTICE.md"}
found_models = {p.name for p in face_models.iterdir()} if face_models.is_dir() else set()
if found_models != WANTED_MODELS:
    problems.append(f"SharedLayer/python/portrait_studio/face_models holds {sorted(found_models)}, "
                    f"expected {sorted(WANTED_MODELS)}")
if (deps / "face_models").exists():
    problems.append("DepsLayer/python/face_models exists: dlib's models are no longer shipped")
if not (deps / "onnxruntime" / "__init__.py").is_file():
    problems.append("DepsLayer/python/onnxruntime is missing: nothing can run the face models")

deps_size, shared_size = size(build / "DepsLayer"), size(build / "SharedLayer")
layers = deps_size + shared_size
largest = max((size(fn) for fn in functions), default=0)
limit = 250 * 1024 * 1024
print(f"DepsLayer {deps_size / 2**20:.1f} MiB (onnxruntime {size(deps / 'onnxruntime') / 2**20:.1f} MiB), "
      f"SharedLayer {shared_size / 2**20:.1f} MiB (face models {size(face_models) / 2**20:.1f} MiB), "
      f"largest function {largest / 2**10:.0f} KiB: {(layers + largest) / 2**20:.1f} of 250 MiB unzipped, "
      f"{(limit - layers - largest) / 2**20:.1f} MiB free; {elf_total} ELF objects (all checked for aarch64)")
if layers + largest > limit:
    problems.append(f"layers + function = {(layers + largest) / 2**20:.1f} MiB > 250 MiB unzipped limit")

if problems:
    print("FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("artifacts OK")
PY

echo "== SAM translation + cfn-lint on the translated template"
TRANSLATED="$(dirname "$BUILD_DIR")/translated-template.json"
(cd "$ROOT" && "$SAM_VENV/bin/python" - template.yaml "$TRANSLATED" <<'PY'
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    """The translator only needs ARNs of the AWS managed policies SAM attaches; no IAM call."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        }


with open(sys.argv[1]) as fh:
    template = yaml_parse(fh.read())
for resource in template["Resources"].values():  # local paths stand in for what `sam package` uploads
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::Serverless::Function":
        props["CodeUri"] = "s3://bucket/function.zip"
    elif resource["Type"] == "AWS::Serverless::LayerVersion":
        props["ContentUri"] = "s3://bucket/layer.zip"
translated = transform(template, {}, OfflinePolicyLoader())
with open(sys.argv[2], "w") as fh:
    json.dump(translated, fh, indent=1)
print(f"translated: {len(translated['Resources'])} CloudFormation resources")
PY
)
"$LINT" "$TRANSLATED"
echo "translated template lints clean"

echo "== sam build check passed"
