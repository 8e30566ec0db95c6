"""evaluate.py and `scones evaluate`: metrics on staged data, photo folders and OOD folders."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from local_model import evaluate as ev
from scones import config

ROOT = Path(__file__).resolve().parents[2]
JSON_FIELDS = ("n", "accuracy", "coverage", "confidently_wrong", "ece")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return ev.write_synthetic_shapes(tmp_path_factory.mktemp("shapes"), num_classes=4)


@pytest.fixture(scope="module")
def model_dir(shapes, tmp_path_factory) -> Path:
    """A small ResNet-20 trained on the shapes (through the real training code)."""
    from local_model import train

    out = tmp_path_factory.mktemp("model")
    hyp = train.resolve_hyp(
        {
            "epochs": 3,
            "image_shape": "3,32,32",
            "mini_batch_size": 32,
            "learning_rate": 0.05,
            "optimizer": "nag",
            "weight_decay": 5e-4,
        },  # fmt: skip
        arch="resnet",
    )
    train.run(shapes, out, hyp)
    return out


def scones(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_metrics_follow_their_definitions():
    probs = np.array([[0.99, 0.01], [0.95, 0.05], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])  # right+pass, wrong+pass, right, right
    m = ev.metrics(probs, labels, ["a", "b"], threshold=0.93)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["coverage"] == pytest.approx(2 / 4)
    assert m["confidently_wrong"] == pytest.approx(1 / 4)
    assert m["accuracy_when_passed"] == pytest.approx(1 / 2)
    assert m["confusion_matrix"]["rows_true_cols_predicted"] == [[2, 0], [1, 1]]
    assert m["per_class"]["a"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "n": 2}
    conf = probs.max(1)
    right = probs.argmax(1) == labels
    assert m["ece"] == pytest.approx(ev.expected_calibration_error(conf, right))
    assert 0 <= m["ece"] <= 1


def test_evaluate_json_has_fields(model_dir, shapes, tmp_path):
    ood = ev.write_images(ev.synthetic_ood_images(12), tmp_path / "ood")
    done = scones("evaluate", "--model", str(model_dir), "--data", str(shapes), "--json",
                  "--ood-data", str(ood))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in (*JSON_FIELDS, "ood_n", "ood_pass_rate"):
        assert key in result
    assert result["n"] == 40 and result["ood_n"] == 12
    for key in ("accuracy", "coverage", "confidently_wrong", "ece", "ood_pass_rate"):
        assert 0.0 <= result[key] <= 1.0
    assert result["confidently_wrong"] <= result["coverage"]
    classes = json.loads((model_dir / "model.json").read_text())["classes"]
    assert list(result["per_class"]) == classes


def dev_set(root: Path) -> Path:
    """A development set like ../shared's other-vehicles: a sub-folder per kind, one loose file."""
    images = ev.synthetic_ood_images(18)
    ev.write_images(images[:6], root / "kind-a")
    ev.write_images(images[6:16], root / "kind-b" / "nested")  # deeper files count for kind-b
    ev.write_images(images[16:], root, prefix="loose")
    return root


def test_ood_data_is_reported_per_sub_folder_and_in_total(model_dir, shapes, tmp_path):
    done = scones("evaluate", "--model", str(model_dir), "--data", str(shapes), "--json",
                  "--ood-data", str(dev_set(tmp_path / "dev")))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    by_folder = result["ood_by_folder"]
    assert {k: v["n"] for k, v in by_folder.items()} == {".": 2, "kind-a": 6, "kind-b": 10}
    assert result["ood_n"] == 18
    passed = sum(v["pass_rate"] * v["n"] for v in by_folder.values())
    assert passed / 18 == pytest.approx(result["ood_pass_rate"])
    for row in by_folder.values():
        assert 0 <= row["unknown_rate"] <= 1 and 0 <= row["pass_rate"] <= 1
    table = scones("evaluate", "--model", str(model_dir), "--data", str(shapes),
                   "--ood-data", str(tmp_path / "dev"))  # fmt: skip
    assert "kind-b/ (10) passing" in table.stdout


def _outputs(vehicle: list[float], distance: list[float]) -> dict:
    """Model outputs of confident images (logits 0 vs 10) with these unknown-score parts."""
    n = len(vehicle)
    return {
        "logits": np.tile([0.0, 10.0], (n, 1)),
        "vehicle_score": np.array(vehicle),
        "distance_score": np.array(distance),
    }


def test_a_ramp_at_a_quantile_of_genuine_scores_decides_who_passes():
    genuine = np.arange(101.0)  # quantile q sits at 100 q, the median at 50
    out = _outputs([0, 98.0, 98.6, 99.6, 200], [0, 0, 0, 0, 1])
    # q = 0.98: lo 98, hi 146; a confident image fails from u = 0.14 on, i.e. 98 + 6.72
    assert ev.pass_at_quantile(out, genuine, 0.98, 0.93).tolist() == [1, 1, 1, 1, 0]
    # q = 0.99: lo 99 -> 98.6 passes, u(99.6) = 0.6 / 49 small: passes; distance 1 never passes
    assert ev.pass_at_quantile(out, genuine, 0.99, 0.93).tolist() == [1, 1, 1, 1, 0]
    strict = _outputs([0, 120.0], [0, 0])  # 22 above lo 98 of 48: u = 0.46, fails
    assert ev.pass_at_quantile(strict, genuine, 0.98, 0.93).tolist() == [1, 0]


def test_leave_one_class_out_chooses_on_the_others_and_scores_the_held_out_one():
    genuine = np.arange(1001.0) / 10  # scores 0..100: quantile q at 100 q
    # kind "easy": far above every candidate ramp; kind "hard": half just above q=0.98's lo
    vehicle = [300.0] * 10 + [98.5] * 5 + [0.0] * 5
    folders = np.array(["easy"] * 10 + ["hard"] * 10)
    out = _outputs(vehicle, [0.0] * 20)

    loco = ev.leave_one_class_out(out, folders, genuine, 0.93)

    # choosing on "easy" alone: every quantile keeps it at 0 %, so the largest (0.998) is kept,
    # and "hard" then passes whole; choosing on "hard": 0.98 still lets its 5 zeros (50 %) pass
    assert loco["held_out"]["hard"] == {"quantile": 0.998, "pass_rate": 1.0}
    assert loco["held_out"]["easy"] == {"quantile": 0.98, "pass_rate": 0.0}
    assert (loco["worst"], loco["mean"]) == (1.0, 0.5)
    single = ev.leave_one_class_out(out, np.array(["all"] * 20), genuine, 0.93)
    assert single["worst"] is None and single["held_out"] == {}


def test_other_vehicle_figures_for_the_benchmark(model_dir, shapes, tmp_path):
    """The benchmark's dev-set figures: pass rates by folder and the leave-one-class-out."""
    figures = ev.other_vehicle_figures(model_dir, shapes, dev_set(tmp_path / "dev"), 0.93)

    assert figures["ood_dev_n"] == 18
    assert set(figures["ood_by_folder"]) == {".", "kind-a", "kind-b"}
    loco = figures["ood_leave_one_class_out"]
    assert set(loco["held_out"]) == {".", "kind-a", "kind-b"}
    rates = [h["pass_rate"] for h in loco["held_out"].values()]
    assert loco["worst"] == max(rates) and loco["mean"] == pytest.approx(np.mean(rates))
    assert loco["quantile_all_folders"] in ev.VEHICLE_QUANTILES


def test_class_folders_of_photos_are_read_like_thumbnails(model_dir, shapes, tmp_path):
    model = ev.load_model(model_dir)
    photos = ev.write_photo_like_split(shapes, "test", model.classes, tmp_path / "photos")
    assert sorted(p.name for p in photos.iterdir()) == sorted(model.classes)
    sample = next((photos / model.classes[0]).iterdir())
    assert sample.suffix == ".jpg" and sample.stat().st_size > 2000  # big JPEGs, not thumbnails
    on_photos = ev.evaluate(model_dir, photos)
    on_thumbs = ev.evaluate(model_dir, shapes)
    assert on_photos["n"] == on_thumbs["n"] and not on_photos["skipped"]
    # same pictures, photo-sized: the model must still recognise most of them
    assert on_photos["accuracy"] >= on_thumbs["accuracy"] - 0.25


def test_unreadable_file_is_skipped_not_fatal(model_dir, shapes, tmp_path):
    model = ev.load_model(model_dir)
    photos = ev.write_photo_like_split(shapes, "test", model.classes, tmp_path / "photos")
    (photos / model.classes[0] / "broken.jpg").write_bytes(b"not a jpeg")
    result = ev.evaluate(model_dir, photos)
    assert len(result["skipped"]) == 1 and "broken.jpg" in result["skipped"][0]


def test_a_bad_lst_line_is_a_named_error(model_dir, shapes, tmp_path):
    """test.lst goes through local_model.lst: a bad line names the file and line, not skipped."""
    import shutil

    data = shutil.copytree(shapes, tmp_path / "data")
    lines = (data / "test.lst").read_text().splitlines()
    lines[2] = lines[2].replace("\t", " ", 1)  # index and label run together
    (data / "test.lst").write_text("\n".join(lines) + "\n")
    model = ev.load_model(model_dir)
    with pytest.raises(ev.EvaluationError, match="test.lst:3"):
        ev.load_labelled(data, model.classes, "test")


def test_unknown_class_folder_is_a_named_error(model_dir, tmp_path):
    (tmp_path / "tractor").mkdir()
    done = scones("evaluate", "--model", str(model_dir), "--data", str(tmp_path))
    assert done.returncode == 1
    assert "tractor" in done.stderr and "Traceback" not in done.stderr


def test_missing_model_is_a_named_error(tmp_path, shapes):
    done = scones("evaluate", "--model", str(tmp_path / "nothing"), "--data", str(shapes))
    assert done.returncode == 1 and "scones train" in done.stderr


def test_default_model_meets_contract_on_real_test_split(shared_data):
    model_dir = config.MODEL_DIR
    if not (model_dir / "model.onnx").is_file():
        pytest.skip(f"no default model at {model_dir}")
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["classes"] == ["bicycle", "motorcycle"]
    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    assert size <= 25 * 2**20
    model = ev.load_model(model_dir)
    labelled = ev.load_labelled(shared_data, model.classes, "test")
    arrays, kept, _ = ev.prepare_files(labelled.files, model.spec)
    probs, ood = ev.predict(model, arrays)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert ((ood >= 0) & (ood <= 1)).all()
    # a regression guard well above the course's SageMaker ResNet (80-84 %), not the 97 % target
    assert (probs.argmax(1) == labelled.labels[kept]).mean() >= 0.9


def test_bench_model_smoke_reports_photos_and_the_other_vehicle_dev_set(shared_data, tmp_path):
    """`scones bench model --smoke` (what CI runs): the committed model's figures, with the
    development set given as --ood-data (here a small synthetic one, so the test does not
    depend on ../shared/data/other-vehicles)."""
    dev = dev_set(tmp_path / "dev")
    # a one-epoch training, then the default model on 200 test images, their photo-like copies,
    # 360 other images and the 1,000 train images: minutes on 2 busy cores
    done = scones("bench", "model", "--smoke", "--json", "--data", str(shared_data),
                  "--ood-data", str(dev), timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["evaluated_model"] == str(config.MODEL_DIR)
    assert 0 <= result["photo_like_accuracy"] <= 1
    assert result["photo_like_accuracy"] == result["photo_like"]["accuracy"]
    assert 0 <= result["ood_pass_rate_dev"] <= 1
    assert {k: v["n"] for k, v in result["ood_by_folder"].items()} == {
        ".": 2,
        "kind-a": 6,
        "kind-b": 10,
    }
    loco = result["ood_leave_one_class_out"]
    assert set(loco["held_out"]) == {".", "kind-a", "kind-b"}
    assert loco["worst"] >= loco["mean"] >= 0
    assert result["targets"]["ood_pass_rate_dev"] == "<= 0.1"
