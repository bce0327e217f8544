"""Residual log-likelihood estimation (``--option loss=rle``): the flow, the loss, the
training-only output and a run through the command line."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from kpose.cli import main
from kpose.data import make_dataset, read_coco, write_synthetic_dataset
from kpose.losses import (CoordinateL1Loss, ResidualLogLikelihoodLoss, flow_log_density,
                          flow_parameter_count)
from kpose.models import build_deeppose, build_deeppose_refiner
from kpose.models.deeppose import build_deeppose_inference, build_deeppose_stage_keypoints
from kpose.models.rle import SIGMA_FLOOR, ResidualFlow
from kpose.runs import load_model
from kpose.skeletons import COCO_17, LSP_14
from kpose.training.run import architecture_of

RESNET = dict(backbone="resnet", depth=10, width=0.125, head="pool", dropout=0.0)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    return read_coco(write_synthetic_dataset(folder, num=8, seed=3, size=96, progress=False))


def _grid(half: float = 12.0, points: int = 481):
    g = np.linspace(-half, half, points)
    x, y = np.meshgrid(g, g)
    return np.stack([x.ravel(), y.ravel()], -1).astype(np.float32), (g[1] - g[0]) ** 2


@pytest.mark.parametrize("scale", [0.0, 0.2])
def test_the_flow_is_a_normalised_density(scale):
    """Whatever its weights, ``G`` integrates to 1 over the plane (a change of variables
    with its exact Jacobian); with zero output layers it is the standard normal."""
    parameters = np.random.default_rng(1).normal(0, scale, flow_parameter_count())
    points, cell = _grid()
    density = np.exp(np.asarray(flow_log_density(points, parameters.astype(np.float32))))
    assert density.sum() * cell == pytest.approx(1.0, abs=0.02)
    if scale == 0.0:
        normal = np.exp(-0.5 * (points ** 2).sum(-1)) / (2 * math.pi)
        np.testing.assert_allclose(density, normal, rtol=1e-5, atol=1e-12)


def test_rle_loss_on_a_known_case():
    """Standard-normal flow, known mu and sigma: the loss is the Laplace term with log
    sigma minus the normal's log density, summed over labelled joints."""
    joints = 2
    mu = np.array([[0.1, 0.0], [0.3, -0.2]], np.float32)
    sigma = np.array([[0.1, 0.2], [0.5, 0.5]], np.float32)
    y_pred = np.concatenate([mu.ravel(), sigma.ravel(),
                             np.zeros(flow_parameter_count(), np.float32)])[None]
    y_true = np.array([[[0.2, 0.1, 1.0], [9.0, 9.0, 0.0]]], np.float32)  # joint 2 unlabelled
    r = (y_true[0, 0, :2] - mu[0]) / sigma[0]
    expected = (np.log(sigma[0]) + np.abs(r) + math.log(2)).sum() \
        + 0.5 * (r ** 2).sum() + math.log(2 * math.pi)
    loss = ResidualLogLikelihoodLoss(joints)(y_true, y_pred)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="RLE prediction must be"):
        ResidualLogLikelihoodLoss(joints)(y_true, y_pred[:, :-1])


def test_an_rle_regressor_learns_and_its_extra_output_stays_in_training(people, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_deeppose(COCO_17, input_size=64, loss="rle", learning_rate=1e-3, **RESNET)
    assert set(model.output_names) == {"keypoints", "rle"}
    data = make_dataset(people, COCO_17, input_size=64, target="coords", batch_size=8)
    data = data.repeat().map(lambda images, targets: (images, {"rle": targets}))
    losses = model.fit(data, epochs=6, steps_per_epoch=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0] - 5.0, losses  # a log-likelihood: falls by nats
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    outputs = model.predict(images, verbose=0)
    sigma = outputs["rle"][:, 2 * 17:4 * 17]
    assert (sigma > SIGMA_FLOOR).all() and (sigma < 1 + SIGMA_FLOOR).all()
    np.testing.assert_allclose(outputs["rle"][:, :2 * 17],
                               outputs["keypoints"].reshape(2, -1), atol=1e-6)
    # What predicts, evaluates and exports holds the regressor alone: no flow, no scale.
    for wrapped in (build_deeppose_inference(model), build_deeppose_stage_keypoints(model)):
        names = {layer.name for layer in _all_layers(wrapped)}
        assert "rle" not in names and "rle_scale_dense" not in names
        flow = model.get_layer("rle").weights  # 6 couplings x 2 MLPs x 3 layers x 2
        assert len(flow) == 72
        assert len(wrapped.weights) == len(model.weights) - len(flow) - 2  # - scale dense
    # The flow trained (its output layers start at zero) and the loss is the one written
    # down: Laplace term with log sigma minus log G, G evaluated here in NumPy.
    weights = model.get_layer("rle").get_weights()
    assert max(np.abs(w).max() for w in weights[4::6]) > 1e-4  # every MLP's W3
    y_true, batch = _labelled_batch(people)
    y_pred = model.predict(batch, verbose=0)["rle"]
    mu = y_pred[:, :34].reshape(-1, 17, 2)
    sigma = y_pred[:, 34:68].reshape(-1, 17, 2)
    r = (y_true[..., :2] - mu) / sigma
    log_g = _numpy_flow_log_density(r.reshape(-1, 2), weights).reshape(-1, 17)
    expected = (y_true[..., 2] * ((np.log(sigma) + np.abs(r) + math.log(2)).sum(-1)
                                  - log_g)).sum(-1)
    np.testing.assert_allclose(ResidualLogLikelihoodLoss(17, reduction=None)(y_true, y_pred),
                               expected, rtol=1e-4, atol=1e-3)
    path = tmp_path / "rle.keras"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.get_layer("rle"), ResidualFlow)
    reloaded = loaded.predict(images, verbose=0)
    for name in ("keypoints", "rle"):
        np.testing.assert_allclose(reloaded[name], outputs[name], atol=1e-5)


def _labelled_batch(people):
    """The first batch of coordinate targets ``(8, 17, 3)``, as the model trained on."""
    data = make_dataset(people, COCO_17, input_size=64, target="coords", batch_size=8)
    images, targets = next(iter(data))
    return np.asarray(targets), np.asarray(images)


def _numpy_flow_log_density(r, weights):
    """RealNVP with affine couplings alternating the kept coordinate, written out in
    NumPy from the layer's weights (coupling by coupling: scale MLP, shift MLP)."""
    def mlp(x, w1, b1, w2, b2, w3, b3):
        def leaky(v):
            return np.where(v > 0, v, 0.01 * v)
        return (leaky(leaky(x @ w1 + b1) @ w2 + b2) @ w3 + b3)[:, 0]

    u, log_det = r.astype(np.float64), np.zeros(len(r))
    for coupling in range(len(weights) // 12):
        scale_net = weights[12 * coupling:12 * coupling + 6]
        shift_net = weights[12 * coupling + 6:12 * coupling + 12]
        keep = coupling % 2
        kept = u[:, keep:keep + 1]
        s = np.tanh(mlp(kept, *scale_net))
        u = u.copy()
        u[:, 1 - keep] = u[:, 1 - keep] * np.exp(s) + mlp(kept, *shift_net)
        log_det += s
    return -0.5 * (u ** 2).sum(-1) - math.log(2 * math.pi) + log_det


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize("build, message", [
    (lambda: build_deeppose(LSP_14, input_size=64, loss="rle", iterations=2,
                            learning_rate=None, **RESNET), "takes neither"),
    (lambda: build_deeppose(LSP_14, input_size=64, loss="rle", with_visibility=True,
                            learning_rate=None, **RESNET), "takes neither"),
    (lambda: build_deeppose_refiner(LSP_14, crop_size=32, loss="rle", learning_rate=None,
                                    **RESNET), "a refiner takes"),
])
def test_rle_where_it_does_not_apply_is_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_an_rle_init_says_where_its_loss_came_from():
    """``--init`` inherits ``loss=rle`` from the card; asking for IEF on top of it is
    refused naming the init's loss and the way out."""
    source = build_deeppose(LSP_14, input_size=64, loss="rle", learning_rate=None, **RESNET)
    with pytest.raises(ValueError, match="--init starts from was trained with loss 'rle'"):
        architecture_of(source, model=None, input_size=None, stages=None, width=None,
                        backbone=None, options={"iterations": 3})
    *_, options = architecture_of(source, model=None, input_size=None, stages=None,
                                  width=None, backbone=None,
                                  options={"iterations": 3, "loss": "l1"})
    assert options["loss"] == "l1" and options["iterations"] == 3


def test_cli_trains_an_rle_cascade_and_evaluates_every_stage(tmp_path, capsys):
    """``--option loss=rle`` through the command line: stage 1 learns by RLE, its refiner
    by L1, the cascade saves, evaluates per stage and exports nothing of RLE."""
    out = tmp_path / "run"
    status = main(["train", "--model", "deeppose", "--stages", "2", "--data", "synthetic:6:9",
                   "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2",
                   "--batch-size", "4", "--strategy", "default", "--input-size", "64",
                   "--backbone", "resnet", "--width", "0.125", "--option", "depth=10",
                   "--option", "head=pool", "--option", "loss=rle", "--option",
                   "dropout=0", "--option", "crop_size=32"])
    assert status == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["model_options"]["loss"] == "rle"
    cascade = load_model(out / "model.keras")
    assert "rle" not in {layer.name for layer in _all_layers(cascade)}
    stage1 = load_model(out / "stages/stage_1.keras")
    assert set(stage1.output_names) == {"keypoints", "rle"}
    # compiled as saved, so --resume goes on with the same loss
    assert isinstance(stage1.loss["rle"], ResidualLogLikelihoodLoss)
    refiner = load_model(out / "stages/refiner_2.keras")
    assert isinstance(refiner.loss, CoordinateL1Loss)  # RLE is stage 1's alone
    capsys.readouterr()
    status = main(["evaluate", str(out), "--data", "synthetic:6:9", "--json",
                   str(tmp_path / "report.json")])
    assert status == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["stages"]) == ["stage_1", "stage_2"]
    # The RLE stage 1 alone exports as a regressor: no scale, no flow in the file.
    from export.cli import main as export_main
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    code = export_main([str(out / "stages/stage_1.keras"), "--tflite", "--calibration-data",
                        "synthetic:12:3", "--verify-samples", "6", "--latency-runs", "1",
                        "--out", str(tmp_path / "export")])
    assert code == 0, capsys.readouterr().err
    interpreter = interpreter_module.Interpreter(
        model_path=str(tmp_path / "export/model.tflite"))
    shapes = [tuple(d["shape"]) for d in interpreter.get_tensor_details()]
    assert (1, 17, 3) in shapes and not [s for s in shapes if flow_parameter_count() in s]
    assert not [d["name"] for d in interpreter.get_tensor_details() if "rle" in d["name"]]
