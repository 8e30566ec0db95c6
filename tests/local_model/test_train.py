"""train.py: one step learns, a tiny run trains + exports, and the ONNX graph matches PyTorch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from local_model import evaluate as ev
from local_model import train

ROOT = Path(__file__).resolve().parents[2]
# ResNet from scratch: SGD with Nesterov momentum, the usual CIFAR recipe
TINY = {"epochs": 3, "image_shape": "3,32,32", "mini_batch_size": 32, "learning_rate": 0.05,
        "optimizer": "nag", "weight_decay": 5e-4}  # fmt: skip


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory) -> Path:
    """10 classes of coloured shapes, staged like cifar100-scones (train.lst/test.lst + PNGs)."""
    return ev.write_synthetic_shapes(tmp_path_factory.mktemp("shapes"), num_classes=10)


def scones_train(data: Path, out: Path, *args: str, timeout: float = 600):
    """`scones train --quiet` through the real CLI with TINY's hyperparameters."""
    cmd = [sys.executable, "-m", "scones", "train", "--data", str(data), "--out", str(out),
           "--quiet", *args]  # fmt: skip
    for key, value in TINY.items():
        cmd += ["--hp", f"{key}={value}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_model(shapes_data, tmp_path_factory) -> tuple[Path, dict]:
    """ResNet-20 on 32 px, a few epochs, trained through the real CLI."""
    out = tmp_path_factory.mktemp("model")
    done = scones_train(shapes_data, out, "--arch", "resnet", "--num-layers", "20")
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "model.json").read_text())


def test_one_step_on_random_tensors_reduces_loss():
    torch.manual_seed(0)
    hyp = train.resolve_hyp(TINY, arch="resnet")
    model = train.build_model(hyp, num_classes=3).train()
    opt = train.make_optimizer([p for p in model.parameters() if p.requires_grad], hyp)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    losses = [train.train_step(model, model.trunk(x), y, opt, hyp)[0] for _ in range(5)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_pretrained_step_keeps_the_trunk_frozen_and_trains_the_rest():
    torch.manual_seed(0)
    hyp = train.resolve_hyp({"image_shape": "3,64,64", "freeze_blocks": 5})
    model = train.build_model(hyp, num_classes=2).train()
    frozen = [p.detach().clone() for p in model.frozen.parameters()]
    head = model.fc.weight.detach().clone()
    opt = train.make_optimizer([p for p in model.parameters() if p.requires_grad], hyp)
    gen = torch.Generator().manual_seed(0)
    h = train.trunk_views(model, train.Normalize(train.LITE_MEAN, train.LITE_STD),
                          torch.rand(8, 3, 32, 32), hyp, gen)  # fmt: skip
    loss, _ = train.train_step(model, h, torch.randint(0, 2, (8,)), opt, hyp)
    assert np.isfinite(loss)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.frozen.parameters(), strict=True))
    assert not torch.equal(head, model.fc.weight)


def test_regularisers_act_only_in_training_and_the_export_matches(tmp_path):
    """Stochastic depth is random in train mode only; a channels-last model exports plain ONNX."""
    import onnxruntime as ort

    torch.manual_seed(0)
    hyp = train.resolve_hyp({"image_shape": "3,64,64"})
    assert hyp["drop_connect"] > 0 and hyp["dropout"] > 0  # the default recipe uses both
    model = train.build_model(hyp, num_classes=2).to(memory_format=torch.channels_last)
    x = torch.rand(6, 3, 32, 32)
    h = train.plain_trunk(model, train.Normalize(train.LITE_MEAN, train.LITE_STD), x, hyp)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model.features(h), model.features(h))
        model.eval()
        assert torch.equal(model.features(h), model.features(h))
    model = model.to(memory_format=torch.contiguous_format)
    served = train.ServedModel(model, 64, 1.0, train.OodCalibration([])).eval()
    train.export_onnx(served, tmp_path / "model.onnx", 32)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    xn = train.Normalize(train.LITE_MEAN, train.LITE_STD)(x)
    with torch.no_grad():
        ref = served(xn)[2].numpy()
    np.testing.assert_allclose(session.run(["logits"], {"image": xn.numpy()})[0], ref, atol=1e-3)


def test_bad_hyperparameters_are_named():
    with pytest.raises(train.TrainingError, match="6n\\+2"):
        train.resolve_hyp({"num_layers": 21}, arch="resnet")
    for fraction in (0, 1):  # no validation images: nothing to pick the epoch or calibrate with
        with pytest.raises(train.TrainingError, match="val_fraction"):
            train.resolve_hyp({"val_fraction": fraction})
    with pytest.raises(train.TrainingError, match="augmentation_type"):
        train.resolve_hyp({"augmentation_type": "rotate"})
    with pytest.raises(train.TrainingError, match="unknown hyperparameter"):
        train.resolve_hyp({"epochz": 3})


def test_a_bad_lst_line_is_a_named_training_error(shapes_data, tmp_path):
    """train.lst goes through local_model.lst: a bad line names the file and the line number."""
    import shutil

    data = shutil.copytree(shapes_data, tmp_path / "data")
    lines = (data / "train.lst").read_text().splitlines()
    lines[4] = "4\tbicycle\tdisc_0_004.png"  # a label that is no number
    (data / "train.lst").write_text("\n".join(lines) + "\n")
    with pytest.raises(train.TrainingError, match="train.lst:5"):
        train.DataSource(data).load("train", 32)
    (data / "train.lst").write_text("\n")
    with pytest.raises(train.TrainingError, match="lists no images"):
        train.DataSource(data).load("train", 32)


def test_the_distance_score_uses_the_frozen_trunk_when_there_is_one():
    """A fine-tuned network's distance score comes from its frozen trunk's features alone; a
    ResNet from scratch, which has no frozen trunk, uses its final features."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 2
    feats, trunk = torch.randn(60, 16, generator=gen), torch.randn(60, 8, generator=gen)
    out = {"features": feats, "trunk": trunk}
    cal = train.calibrate_ood(out, labels, out, dims=4)
    assert [s.name for s in cal.scores] == ["trunk_features"]
    assert cal.scores[0].mean.shape == (8,)
    cal = train.calibrate_ood({**out, "trunk": None}, labels, {**out, "trunk": None}, dims=4)
    assert [s.name for s in cal.scores] == ["final_features"]
    assert cal.scores[0].whiten.shape == (4, 16)


def test_augment_keeps_shape_and_range():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32)
    for kind in ("crop", "crop_color", "crop_color_transform"):
        y = train.augment(x, kind, gen)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_tiny_run_exports_model_directory(tiny_model, shapes_data):
    out, meta = tiny_model
    names = json.loads((shapes_data / "classes.json").read_text())
    assert meta["classes"] == [names[str(i)]["name"] for i in range(10)]
    assert meta["input"]["height"] == 32 and len(meta["input"]["mean"]) == 3
    assert meta["outputs"]["probabilities"] == "probabilities"
    for key in ("ood", "metrics", "hyperparameters", "data", "training_seconds", "versions"):
        assert key in meta
    assert meta["hyperparameters"]["num_layers"] == 20 and meta["seed"] == 0
    assert meta["data"]["n_train"] + meta["data"]["n_validation"] == 300
    history = meta["metrics"]["history"]
    assert len(history) == TINY["epochs"]
    # learnable data: a few epochs beat chance (10 %) clearly on the held-out validation split
    assert max(row["val_accuracy"] for row in history) > 0.3


def test_cross_validation_holds_out_every_train_image_once(shapes_data, tmp_path):
    """scones train --cv 2: two ResNets; the pooled held-out figures cover all 300 train images."""
    done = scones_train(shapes_data, tmp_path, "--arch", "resnet", "--cv", "2")
    assert done.returncode == 0, done.stderr
    assert "2-fold cross-validation, 300 held-out images" in done.stdout
    result = json.loads((tmp_path / "cv.json").read_text())
    assert result["folds"] == 2 and result["n"] == 300
    assert len(result["per_epoch"]) == TINY["epochs"]
    assert result["last_epoch"] == result["per_epoch"][-1]
    assert len(result["selected_epochs"]) == 2
    assert all(1 <= e <= TINY["epochs"] for e in result["selected_epochs"])
    assert result["last_epoch"]["accuracy"] > 0.3  # learnable data: well above chance (10 %)
    assert not (tmp_path / "model.onnx").exists()  # an estimate, not a model


def test_cross_validation_never_calibrates_an_image_on_itself():
    """Each held-out image's temperature is the one fitted on the other images of its fold."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40,), generator=gen)
    margin = 2.0 + torch.rand(40, generator=gen) * 3  # right, with some confidence
    margin[0] = -3.0  # ...but image 0 is confidently wrong, which pulls a fitted temperature up
    logits = torch.stack([torch.zeros(40), margin * (2 * labels - 1)], 1)
    probs = train.held_out_probabilities(logits, labels)
    for i in (0, 1, 17):
        others = torch.arange(40) != i
        t = train.fit_temperature(logits[others], labels[others])
        assert np.allclose(probs[i], torch.softmax(logits[i] / t, 0).numpy(), atol=1e-6)
    in_sample = torch.softmax(logits[0] / train.fit_temperature(logits, labels), 0)
    assert probs[0].max() > in_sample.max().item() + 0.02  # fitted on itself, it looked less sure


def test_cross_validation_with_export_pytorch_is_a_named_error(shapes_data, tmp_path):
    done = scones_train(shapes_data, tmp_path, "--cv", "2", "--export-pytorch", timeout=120)
    assert done.returncode == 2  # a usage error and "Traceback" not in done.stderr
    assert "--export-pytorch" in done.stderr and "--cv" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before any training


def test_folds_are_stratified_and_too_few_are_named(shapes_data):
    labels = np.repeat(np.arange(3), [10, 11, 7])
    fold_of = train.assign_folds(labels, 5, seed=0)
    for c in range(3):
        counts = np.bincount(fold_of[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    with pytest.raises(train.TrainingError, match="at least 2 folds"):
        train.cross_validate(shapes_data, train.resolve_hyp(TINY, arch="resnet"), folds=1)
    with pytest.raises(train.TrainingError, match="400 folds need"):
        train.cross_validate(shapes_data, train.resolve_hyp(TINY, arch="resnet"), folds=400)


def test_onnx_probabilities_sum_to_one_and_match_pytorch(tmp_path):
    torch.manual_seed(0)
    hyp = train.resolve_hyp({"image_shape": "3,48,48"}, arch="resnet")
    model = train.build_model(hyp, num_classes=3).eval()
    x = torch.randn(40, 3, 32, 32)
    feats = train.infer(model, torch.nn.Identity(), x, hyp)
    labels = torch.arange(40) % 3
    cal = train.calibrate_ood(feats, labels, feats, dims=8)
    served = train.ServedModel(model, 48, 1.5, cal).eval()
    train.export_onnx(served, tmp_path / "model.onnx", 32)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == train.OUTPUT_NAMES
    for batch in (1, 7):
        xb = x[:batch]
        probs, ood, logits, vehicle, distance = session.run(None, {"image": xb.numpy()})
        with torch.no_grad():
            ref_p, ref_u, ref_l, _, _ = (t.numpy() for t in served(xb))
        assert (vehicle == 0).all()  # a ResNet has no ImageNet prior
        np.testing.assert_allclose(distance, ood, atol=1e-6)  # so u is the distance part alone
        assert probs.shape == (batch, 3) and ood.shape == (batch,)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probs, ref_p, atol=1e-4)
        np.testing.assert_allclose(ood, ref_u, atol=1e-4)
        np.testing.assert_allclose(logits, ref_l, atol=1e-3)
    # a far-away input is pushed toward uniform: ood score up, top probability down
    far = (x[:4] * 50).numpy()
    probs, ood, *_ = session.run(None, {"image": far})
    assert (ood > 0.5).all() and (probs.max(1) < 1 / 3 + 0.5 * (1 - 1 / 3) + 1e-6).all()


def test_vehicle_prior_is_the_untouched_imagenet_networks_mass_ratio():
    """The prior keeps only the rows of the 1000-class head it needs; the softmax normaliser
    cancels, so it must equal log(mass on other vehicles / mass on two-wheelers) of the full
    pretrained network on the same input."""
    torch.manual_seed(0)
    net = train.LiteNet(1, 8).eval()  # the untouched ImageNet network
    prior = train.VehiclePrior(8)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        h = net.trunk(x)
        q = torch.softmax(net.net._fc(net.features(h)), 1)
        expected = torch.log(q[:, sorted(train.IMAGENET_OTHER_VEHICLES)].sum(1)) - torch.log(
            q[:, sorted(train.IMAGENET_TWO_WHEELERS)].sum(1)
        )
        got = train.vehicle_scores(prior, h)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in prior.parameters())
    assert not set(train.IMAGENET_OTHER_VEHICLES) & set(train.IMAGENET_TWO_WHEELERS)


def test_the_exported_prior_pushes_a_vehicle_like_input_to_uniform(tmp_path):
    """ONNX: vehicle_score is the prior's log-odds; u = max(distance_score, ramp(vehicle_score))
    and an input at the top of the ramp comes out as 1/K for every class."""
    import onnxruntime as ort

    torch.manual_seed(0)
    hyp = train.resolve_hyp({"image_shape": "3,64,64"})
    model = train.build_model(hyp, num_classes=2).eval()
    x = torch.randn(6, 3, 32, 32)
    cal = train.OodCalibration([])  # no distance scores: the prior alone decides
    prior = train.VehiclePrior(hyp["freeze_blocks"])
    with torch.no_grad():
        scores = train.vehicle_scores(prior, model.trunk(train.upsample(x, 64)))
    train.calibrate_vehicle_prior(cal, scores, 0.5)  # half of these inputs above lo
    served = train.ServedModel(model, 64, 1.0, cal, prior).eval()
    train.export_onnx(served, tmp_path / "model.onnx", 32)
    train._export(served, torch.zeros(2, 3, 32, 32), tmp_path / "reference.onnx")  # float32
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])

    probs, ood, _, vehicle, distance = session.run(None, {"image": x.numpy()})

    np.testing.assert_allclose(vehicle, scores.numpy(), atol=0.02)  # float16-stored weights
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    halves = [i for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert halves and all(i.name.endswith("__float16") for i in halves)  # the prior's, only
    reference = ort.InferenceSession(str(tmp_path / "reference.onnx"))
    assert (distance == 0).all()
    ramp = np.clip((vehicle - cal.vehicle_lo) / (cal.vehicle_hi - cal.vehicle_lo), 0, 1)
    np.testing.assert_allclose(ood, ramp, atol=1e-4)
    top = int(np.argmax(vehicle))  # the highest score is at or above hi = lo + (lo - median)
    assert ood[top] == pytest.approx(1.0) and probs[top] == pytest.approx([0.5, 0.5], abs=1e-5)
    # the task's own outputs do not depend on how the prior is stored
    full = reference.run(None, {"image": x.numpy()})
    np.testing.assert_array_equal(full[2], session.run(["logits"], {"image": x.numpy()})[0])


@pytest.mark.integration
def test_trains_from_s3_layout(aws_client, tmp_path):
    """s3://bucket/prefix with the staged layout trains like the folder (boto3 via the emulator)."""
    data = ev.write_synthetic_shapes(tmp_path / "shapes", num_classes=3, per_class=12)
    s3 = aws_client("s3")
    bucket = "scones-train-test"
    s3.create_bucket(Bucket=bucket)
    for path in data.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"staged/{path.relative_to(data).as_posix()}")
    hyp = train.resolve_hyp({**TINY, "epochs": 1}, arch="resnet")
    meta = train.run(f"s3://{bucket}/staged", tmp_path / "model", hyp)
    assert meta["classes"] == ["disc_0", "square_0", "triangle_0"]
    assert meta["data"]["source"] == f"s3://{bucket}/staged"
    assert (tmp_path / "model" / "model.onnx").is_file()


def test_export_pytorch_writes_the_same_model_for_eager_pytorch(tmp_path):
    """--export-pytorch adds model.pt2: the endpoint benchmark's baseline loads it, same outputs."""
    import onnxruntime as ort
    import torch

    from local_model.baseline import load_torch_model

    data = ev.write_synthetic_shapes(tmp_path / "shapes", num_classes=2, per_class=12)
    hyp = train.resolve_hyp({**TINY, "epochs": 1}, arch="resnet")
    train.run(data, tmp_path / "model", hyp, export_pytorch=True)
    eager = load_torch_model(tmp_path / "model")
    batch = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        eager_probs = eager(batch)[0].numpy()
    session = ort.InferenceSession(str(tmp_path / "model" / "model.onnx"))
    onnx_probs = session.run(["probabilities"], {"image": batch.numpy()})[0]
    np.testing.assert_allclose(eager_probs, onnx_probs, atol=1e-4)
