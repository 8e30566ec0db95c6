"""The tiny red-vs-blue ONNX model: a model directory whose answers a test can predict."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLASSES = ["reddish", "bluish"]  # not alphabetical: the order must come from model.json


def build_tiny_model(
    model_dir: Path,
    classes: list[str] = TINY_CLASSES,
    with_torch: bool = False,
    with_ood: bool = True,
) -> Path:
    """A 32x32 classifier whose first class wins on red images and second on blue ones.

    conv 1x1 (identity) -> global average pool -> linear -> softmax, dynamic batch, plus an
    "ood_score" output that is high on green images (neither class: the unknown-image signal;
    grey ones stay merely unsure), following the model-directory contract (model.onnx + model.json);
    ``with_torch`` adds the same network as model.pt2 (torch.export, for the benchmark baseline);
    ``with_ood=False`` leaves the unknown-image output out (as a user's model may).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model_dir.mkdir(parents=True, exist_ok=True)
    conv_w = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    gemm_w = np.array([[4.0, 0.0, -4.0], [-4.0, 0.0, 4.0]], dtype=np.float32)  # red vs blue
    gemm_b = np.zeros(2, dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "gemm_w", "gemm_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])]
    initializers = [
        numpy_helper.from_array(conv_w, "conv_w"),
        numpy_helper.from_array(gemm_w, "gemm_w"),
        numpy_helper.from_array(gemm_b, "gemm_b"),
    ]
    names = {"probabilities": "probabilities"}
    if with_ood:
        nodes += [
            # ood_score = clip(normalised green - 1, 0, 1): 0 on grey, red and blue, 1 on pure green
            helper.make_node("Gather", ["flat", "green"], ["green_level"], axis=1),
            helper.make_node("Sub", ["green_level", "one"], ["green_excess"]),
            helper.make_node("Clip", ["green_excess", "zero", "one"], ["ood_score"]),
        ]
        outputs.append(helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["batch"]))
        initializers += [
            numpy_helper.from_array(np.array(1, dtype=np.int64), "green"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        names["ood_score"] = "ood_score"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    onnx.save(model, model_dir / "model.onnx")
    meta = {
        "classes": classes,
        "input": {
            "name": "input",
            "height": 32,
            "width": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "outputs": names,
    }
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2))
    if with_torch:
        _save_torch_twin(model_dir / "model.pt2", conv_w, gemm_w, gemm_b)
    return model_dir


def _save_torch_twin(path: Path, conv_w, gemm_w, gemm_b) -> None:
    """The same network in PyTorch (torch.export): the benchmark baseline's model.pt2."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 1, bias=False),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(3, 2),
        torch.nn.Softmax(dim=1),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(conv_w))
        net[3].weight.copy_(torch.from_numpy(gemm_w))
        net[3].bias.copy_(torch.from_numpy(gemm_b))
    exported = torch.export.export(net.eval(), (torch.zeros(1, 3, 32, 32),))
    torch.export.save(exported, str(path))
