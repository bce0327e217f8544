"""Models shipped with kpose: the storage round trip, ``pretrained:NAME`` wherever a model
path goes, and the shipped LSP models themselves (offline, scoring on real val images)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import kpose
import kpose.zoo
from export import export_model
from kpose.cli import main as kpose_main
from kpose.data import read_lsp
from kpose.data.specs import LoadedData
from kpose.evaluation import evaluate
from kpose.models.card import describe
from kpose.models.simplebaseline import build_simplebaseline
from kpose.prediction import inference_model, predict
from kpose.skeletons import LSP_14
from kpose.zoo import pretrained, pretrained_info, pretrained_names, save_pretrained

METADATA = {"description": "a tiny untrained model", "command": "none", "data": "none",
            "steps": 0, "batch_size": 0, "scores": {}, "license": "test"}
# The fields every shipped model states (README "Shipped models").
SHIPPED_FIELDS = {"description", "command", "data", "steps", "batch_size", "scores",
                  "license"}


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A folder holding one small shipped-model pair, ``tiny``, and its Keras original."""
    folder = tmp_path_factory.mktemp("zoo")
    model = build_simplebaseline(LSP_14, input_size=64, width=0.125, depth=10)
    for variable in model.weights:  # non-trivial BatchNorm statistics
        if "moving" in variable.path:
            variable.assign(np.random.default_rng(0).uniform(0.5, 2.0, variable.shape))
    save_pretrained(model, "tiny", METADATA, folder)
    return folder, model


def test_a_shipped_model_round_trips_in_half_the_bytes(tiny_zoo):
    folder, original = tiny_zoo
    assert pretrained_names(folder) == ["tiny"]
    assert pretrained_info("pretrained:tiny", folder) == METADATA
    loaded = pretrained("tiny", folder)
    assert describe(loaded) == describe(original)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    for key, maps in original(images).items():
        np.testing.assert_allclose(loaded(images)[key], maps, atol=2e-3)
    float32_bytes = sum(v.numpy().nbytes for v in original.weights)
    assert (folder / "tiny.npz").stat().st_size < 0.6 * float32_bytes


def test_a_cascade_of_same_named_stages_keeps_every_stages_weights(tmp_path):
    """A DeepPose cascade's stages are networks with the same layer names, so two
    variables share each path; both must be stored and restored (keyed by path and
    repeat), or stage 1 comes back with its refiner's weights."""
    from kpose.models import build_deeppose, build_deeppose_cascade, build_deeppose_refiner

    keras.utils.set_random_seed(2)
    stage1 = build_deeppose(LSP_14, input_size=64, width=1 / 16, learning_rate=None)
    refiner = build_deeppose_refiner(LSP_14, crop_size=64, width=1 / 16, learning_rate=None)
    dense = refiner.get_layer("displacements_dense")  # a refiner that moves the joints
    dense.kernel.assign(np.random.default_rng(0).normal(0, 0.01, dense.kernel.shape))
    cascade = build_deeppose_cascade(stage1, [refiner], sigma=2.0, skeleton=LSP_14)
    paths = [v.path for v in cascade.weights]
    assert len(set(paths)) < len(paths)  # the case this is about
    save_pretrained(cascade, "cascade", METADATA, folder=tmp_path)
    loaded = pretrained("cascade", tmp_path)
    for before, after in zip(cascade.weights, loaded.weights):
        np.testing.assert_allclose(after.numpy(), before.numpy(), rtol=2e-3, atol=1e-6)
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(cascade(images)),
                               atol=0.05)


def test_damaged_weights_and_unknown_names_are_refused_in_one_line(tiny_zoo, tmp_path):
    folder, _ = tiny_zoo
    with pytest.raises(ValueError, match="no shipped model named 'nope'; kpose ships: tiny"):
        pretrained("pretrained:nope", folder)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "tiny.json").write_text((folder / "tiny.json").read_text())
    payload = bytearray((folder / "tiny.npz").read_bytes())
    payload[-100] ^= 0xFF
    (damaged / "tiny.npz").write_bytes(bytes(payload))
    with pytest.raises(ValueError, match="does not match its checksum"):
        pretrained("tiny", damaged)


def test_pretrained_name_works_in_predict_evaluate_and_export(tiny_zoo, monkeypatch, capsys,
                                                              realdata, tmp_path):
    folder, _ = tiny_zoo
    monkeypatch.setattr(kpose.zoo, "WEIGHTS_DIR", folder)
    image = realdata / "lspet" / "images" / "im00001.jpg"
    assert kpose_main(["predict", "pretrained:tiny", str(image), "--box", "20,20,100,140"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [p["joint"] for p in found[0]["keypoints"]] == list(LSP_14.joint_names)
    records = read_lsp(realdata / "lspet" / "joints.mat", realdata / "lspet" / "images",
                       variant="lspet")[:4]
    report = evaluate("pretrained:tiny", LoadedData("lsp", records, LSP_14))
    assert report["persons"] == 4
    result = export_model("pretrained:tiny", tmp_path / "export", calibration_data=None,
                          calibration_samples=4, verify_samples=4, latency_runs=1)
    assert result.metadata["source"]["path"] == "pretrained:tiny"
    assert max(row["max_px"] for row in result.report["files"]) <= 0.01
    assert kpose_main(["predict", "pretrained:nope", str(image)]) == 1
    assert "kpose ships: tiny" in capsys.readouterr().err


def test_kpose_ships_models_that_state_how_they_were_made():
    names = pretrained_names()
    assert names, "kpose/weights holds no shipped model"
    assert names == kpose.pretrained_names()
    sizes = {p.name: p.stat().st_size / 2**20 for p in kpose.zoo.WEIGHTS_DIR.iterdir()}
    total = sum(sizes.values())
    assert total <= 25, f"shipped models take {total:.1f} MB (limit 25)"
    # The best model and the phone model stay small together (the DeepPose cascade is
    # two ResNet-18 networks, and the rest of the budget).
    heatmap_models = sum(size for name, size in sizes.items()
                         if name.startswith("lsp-simplebaseline-"))
    assert heatmap_models <= 15, f"the SimpleBaselines models take {heatmap_models:.1f} MB"
    for name in names:
        info = pretrained_info(name)
        assert SHIPPED_FIELDS <= set(info), (name, sorted(info))
        assert info["command"].startswith("kpose train")
        assert info["scores"]["lspet_bench val"]["PCK@0.2"] > 0.0


@pytest.mark.parametrize("name", pretrained_names())
def test_shipped_model_finds_real_poses_offline(name, realdata):
    """Each shipped model scores near its stated val PCK@0.2 on the first 100 lspet_bench
    val images (100 persons: a few points of sampling noise)."""
    bench = realdata / "lspet_bench"
    if not (bench / "joints_val.mat").is_file():
        pytest.skip(f"lspet_bench not found in {realdata}")
    records = read_lsp(bench / "joints_val.mat", bench / "images", variant="lspet",
                       first_index=4001)[:100]
    model = kpose.pretrained(name)
    assert describe(model).skeleton.name == LSP_14.name
    stated = pretrained_info(name)["scores"]["lspet_bench val"]["PCK@0.2"]
    report = evaluate(model, LoadedData("lspet_bench val", records, LSP_14))
    measured = report["final"]["PCK@0.2"]["value"]
    assert measured >= stated - 0.08, (measured, stated)
    keypoints = predict(inference_model(model), [records[0].image_path],
                        [records[0].box])
    assert keypoints.shape == (1, 14, 3) and np.isfinite(keypoints).all()
