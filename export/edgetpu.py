"""What the Edge TPU compiler would map: a static check of a ``.tflite`` file.

``edgetpu_compiler`` cannot run here (it is not in the package registries), so kpose checks
what the compiler documents: every tensor int8/uint8 (int32 only for constant biases and
shape arguments), static shapes with batch 1, no tensor with more than 3 non-unit
dimensions (only the innermost three may exceed 1), and every op on the supported list
below with its listed limitations. The compiler maps ops in execution order until the
first op it cannot map and runs everything from there on the CPU; the report names that
op.

Source of :data:`SUPPORTED_OPS` (looked up with kpose's search tool in November 2026;
coral.ai itself was not reachable from here): the op names are Coral's current list,
"TensorFlow models on the Edge TPU", section "Supported operations"
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations, Edge TPU Compiler 16),
as quoted from that page in a public write-up on the compiler. The limitations of
AveragePool2d, Concatenation, FullyConnected, MaxPool2d, Mean, Pad and ResizeBilinear are
that page's "known limitations" column as shown in a mirror of it; Softmax's is from
kpose's TOOLCHAIN notes; the others (DepthwiseConv2d, Pack, Split, the reductions,
StridedSlice, PReLU, LSTM) are the page's wording as remembered, not re-read here, and
marked so below. ABS, ARG_MAX, BATCH_MATMUL, CAST, DEQUANTIZE, FLOOR_DIV, FLOOR_MOD,
GATHER and LOG are not on the list. Re-check the page when the compiler changes, and a
model on a real device, before relying on a new op.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SUPPORTED_OPS", "SOURCE", "EdgeTpuReport", "OpCheck", "check_edgetpu",
           "op_names"]

SOURCE = ("https://coral.ai/docs/edgetpu/models-intro/#supported-operations "
          "(Edge TPU Compiler 16; consulted November 2026)")

# TFLite builtin op -> the limitation Coral lists for it ("" = none listed).
SUPPORTED_OPS: dict[str, str] = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation function; a compile-time constant input is "
                     "allowed only as one of exactly 2 inputs and only if all zeros",
    "CONV_2D": "",
    "DEPTHWISE_CONV_2D": "dilated kernels are not supported (unverified)",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "only the default weights format; output tensor one-dimensional",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only (unverified)",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation function",
    "MEAN": "reduction along x and/or y only",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "not along the batch dimension (unverified)",
    "PAD": "padding along x and/or y only",
    "PRELU": "alpha must be constant (unverified)",
    "QUANTIZE": "",
    "REDUCE_MAX": "not along the batch dimension (unverified)",
    "REDUCE_MIN": "not along the batch dimension (unverified)",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "large reshapes may stay on the CPU",
    "RESIZE_BILINEAR": "input/output at most 3-dimensional; may stay on the CPU to keep "
                       "precision",
    "RESIZE_NEAREST_NEIGHBOR": "input/output at most 3-dimensional",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input of at most 16,000 elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "not along the batch dimension (unverified)",
    "SQUEEZE": "",
    "STRIDED_SLICE": "all strides 1, no ellipsis or new-axis mask (unverified)",
    "SUB": "",
    "SUM": "not along the batch dimension (unverified)",
    "SQUARED_DIFFERENCE": "",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

_EIGHT_BIT = ("INT8", "UINT8")
_SOFTMAX_LIMIT = 16000


@dataclass
class OpCheck:
    """One op of the graph, in execution order, and why it would not map (if so)."""

    index: int
    name: str
    reasons: list[str] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return not self.reasons


@dataclass
class EdgeTpuReport:
    """The Edge TPU check of one ``.tflite`` file.

    Attributes:
        ops: every op in execution order.
        model_issues: problems of the model as a whole (input batch, dynamic shapes).
    """

    ops: list[OpCheck]
    model_issues: list[str] = field(default_factory=list)

    @property
    def supported(self) -> int:
        """Ops that the compiler could map on their own."""
        return sum(op.supported for op in self.ops)

    @property
    def first_cut(self) -> OpCheck | None:
        """The first op the compiler cannot map: it and every op after it run on the CPU."""
        return next((op for op in self.ops if not op.supported), None)

    @property
    def mapped(self) -> int:
        """Ops before the first cut: those the compiler would run on the Edge TPU."""
        cut = self.first_cut
        return len(self.ops) if cut is None else cut.index

    @property
    def fully_mapped(self) -> bool:
        return self.first_cut is None and not self.model_issues

    def as_dict(self) -> dict:
        cut = self.first_cut
        return {
            "source": SOURCE,
            "ops": len(self.ops), "supported": self.supported, "mapped": self.mapped,
            "coverage": self.supported / max(len(self.ops), 1),
            "fully_mapped": self.fully_mapped,
            "first_cut": None if cut is None else {"index": cut.index, "op": cut.name,
                                                   "reasons": cut.reasons},
            "model_issues": self.model_issues,
            "unsupported": [{"index": op.index, "op": op.name, "reasons": op.reasons}
                            for op in self.ops if not op.supported],
        }

    def format(self) -> str:
        """A table like the compiler's log: op, count, status; then the cut."""
        rows: dict[tuple[str, str], int] = {}
        for op in self.ops:
            status = "Mapped to Edge TPU" if op.supported else "; ".join(op.reasons)
            rows[(op.name, status)] = rows.get((op.name, status), 0) + 1
        width = max([len("Operator")] + [len(name) for name, _ in rows])
        lines = [f"{'Operator':{width}s}  Count  Status"]
        lines += [f"{name:{width}s}  {count:5d}  {status}"
                  for (name, status), count in sorted(rows.items())]
        lines.append(f"Edge TPU check: {self.supported} of {len(self.ops)} ops supported "
                     f"({100 * self.supported / max(len(self.ops), 1):.0f} %), "
                     f"{self.mapped} would run on the Edge TPU")
        for issue in self.model_issues:
            lines.append(f"model: {issue}")
        cut = self.first_cut
        if cut is not None:
            lines.append(f"first op the compiler would cut at: #{cut.index} {cut.name} "
                         f"({'; '.join(cut.reasons)}); it and the "
                         f"{len(self.ops) - cut.index - 1} ops after it would run on the CPU")
        lines.append(f"(supported-op list: {SOURCE})")
        return "\n".join(lines)


def check_edgetpu(model: bytes) -> EdgeTpuReport:
    """Check a ``.tflite`` flatbuffer against the Edge TPU's requirements (module doc)."""
    from ai_edge_litert import schema_py_generated as schema

    flat = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = flat.subgraphs[0]
    names = op_names(flat)
    types = {value: name for name, value in vars(schema.TensorType).items()
             if not name.startswith("_")}
    issues = []
    if len(flat.subgraphs) != 1:
        issues.append(f"{len(flat.subgraphs)} subgraphs; the Edge TPU runs one")
    for index in graph.inputs:
        shape = list(graph.tensors[index].shape)
        if not shape or shape[0] != 1:
            issues.append(f"input {graph.tensors[index].name.decode()} has batch "
                          f"{shape[0] if shape else '?'}, not 1")
    checks = []
    for index, op in enumerate(graph.operators):
        name = names[index]
        reasons = []
        if name not in SUPPORTED_OPS:
            reasons.append("operation not on the Edge TPU's supported list")
        else:
            reasons += _tensor_reasons(flat, graph, op, types)
            reasons += _limitation_reasons(name, flat, graph, op)
        checks.append(OpCheck(index, name, reasons))
    return EdgeTpuReport(checks, issues)


def op_names(flat) -> list[str]:
    """Builtin op names (``"CONV_2D"``) of subgraph 0 of a ``ModelT``, in execution order."""
    from ai_edge_litert import schema_py_generated as schema

    by_code = {value: name for name, value in vars(schema.BuiltinOperator).items()
               if not name.startswith("_")}
    names = []
    for op in flat.subgraphs[0].operators:
        code = flat.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = by_code.get(builtin, f"OP_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM({(code.customCode or b'').decode()})"
        names.append(name)
    return names


def _tensor_reasons(flat, graph, op, types) -> list[str]:
    reasons = []
    for role, indices in (("input", op.inputs), ("output", op.outputs)):
        for tensor_index in indices:
            if tensor_index < 0:
                continue
            tensor = graph.tensors[tensor_index]
            kind = types.get(tensor.type, str(tensor.type))
            constant = _constant(flat, tensor) is not None
            label = tensor.name.decode(errors="replace")
            if kind not in _EIGHT_BIT and not (constant and kind == "INT32"):
                reasons.append(f"{role} {label} is {kind}, not int8/uint8")
            signature = tensor.shapeSignature
            if signature is not None and any(d < 0 for d in signature):
                reasons.append(f"{role} {label} has a dynamic shape")
            shape = list(tensor.shape) if tensor.shape is not None else []
            if not constant and len(shape) > 3 and any(d != 1 for d in shape[:-3]):
                reasons.append(f"{role} {label} {shape} has more than 3 non-unit "
                               "dimensions")
    return reasons


def _limitation_reasons(name: str, flat, graph, op) -> list[str]:
    options = op.builtinOptions
    fused = getattr(options, "fusedActivationFunction", 0)
    inputs = [graph.tensors[i] for i in op.inputs if i >= 0]
    output = graph.tensors[op.outputs[0]]
    rank = len(inputs[0].shape) if inputs and inputs[0].shape is not None else 0
    reasons = []
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and fused:
        reasons.append("fused activation function")
    elif name == "CONCATENATION":
        if fused:
            reasons.append("fused activation function")
        constants = [_constant(flat, t) for t in inputs]
        if any(c is not None for c in constants):
            zero = all(_is_zero(tensor, values)
                       for tensor, values in zip(inputs, constants, strict=True)
                       if values is not None)
            if len(inputs) != 2 or not zero:
                reasons.append("a constant input that is not one of 2 inputs or not all "
                               "zeros")
    elif name == "DEPTHWISE_CONV_2D":
        if (getattr(options, "dilationWFactor", 1), getattr(options, "dilationHFactor", 1)) \
                != (1, 1):
            reasons.append("dilated kernel")
    elif name == "FULLY_CONNECTED":
        if getattr(options, "weightsFormat", 0) != 0:
            reasons.append("weights not in the default format")
        if sum(d != 1 for d in output.shape) > 1:
            reasons.append(f"output {list(output.shape)} is not one-dimensional")
    elif name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = _constant(flat, inputs[1])
        axes = [] if axes is None else [int(a) % max(rank, 1) for a in np.ravel(axes)]
        if 0 in axes and rank > 1:
            reasons.append("reduces the batch dimension")
        if name == "MEAN" and rank == 4 and 3 in axes:
            reasons.append("reduces channels (only x and/or y)")
    elif name == "PAD":
        paddings = _constant(flat, inputs[1])
        if paddings is None:
            reasons.append("paddings are not constant")
        elif rank == 4 and np.any(np.asarray(paddings).reshape(4, 2)[[0, 3]] != 0):
            reasons.append("pads the batch or channel dimension (only x and/or y)")
    elif name in ("PACK", "SPLIT"):
        axis = getattr(options, "axis", None)
        if name == "SPLIT":
            value = _constant(flat, inputs[0])
            axis = None if value is None else int(np.ravel(value)[0])
        if axis == 0:
            reasons.append("along the batch dimension")
    elif name == "SOFTMAX":
        shape = list(inputs[0].shape)
        if sum(d != 1 for d in shape) > 1 or int(np.prod(shape)) > _SOFTMAX_LIMIT:
            reasons.append(f"input {shape} is not 1-D with at most {_SOFTMAX_LIMIT} "
                           "elements")
    elif name == "STRIDED_SLICE":
        strides = _constant(flat, inputs[3]) if len(inputs) > 3 else None
        if strides is None or np.any(np.asarray(strides) != 1):
            reasons.append("strides other than 1")
        if getattr(options, "ellipsisMask", 0) or getattr(options, "newAxisMask", 0):
            reasons.append("ellipsis or new-axis mask")
    elif name == "PRELU" and _constant(flat, inputs[1]) is None:
        reasons.append("alpha is not constant")
    return reasons


def _constant(flat, tensor):
    """The tensor's constant values (a NumPy array), or ``None`` for an activation."""
    buffer = flat.buffers[tensor.buffer] if tensor.buffer < len(flat.buffers) else None
    if buffer is None or buffer.data is None or len(buffer.data) == 0:
        return None
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
              schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64,
              schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT16: np.int16,
              schema.TensorType.FLOAT16: np.float16}
    dtype = dtypes.get(tensor.type, np.uint8)
    return np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), dtype=dtype)


def _is_zero(tensor, values) -> bool:
    quantization = tensor.quantization
    zero_point = 0
    if quantization is not None and quantization.zeroPoint is not None \
            and len(quantization.zeroPoint):
        zero_point = int(quantization.zeroPoint[0])
    return bool(np.all(values.astype(np.int64) == zero_point))
