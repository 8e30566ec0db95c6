"""local_model/train.py as SageMaker runs it: from the uploaded source dir, SM_* folders, CLI args.

The script runs from an unpacked sourcedir.tar.gz (what cloud mode uploads), the way the
sagemaker-training toolkit starts it: `python local_model/train.py --name value ...` in the code
directory, with PYTHONPATH from the job's Environment. What it writes to SM_MODEL_DIR must be what
`scones serve` loads. https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cloud import training as cloud_training
from local_model import evaluate as ev
from local_model import train
from local_model.serve import OnnxModel

pytestmark = pytest.mark.slow
# ResNet-20 from scratch at 32 px, one epoch: the whole path, in seconds
TINY_ARGS = ["--use_pretrained_model", "0", "--image_shape", "3,32,32", "--epochs", "1",
             "--mini_batch_size", "32", "--learning_rate", "0.05",
             "--optimizer", "nag"]  # fmt: skip


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory) -> Path:
    """sourcedir.tar.gz, as cloud mode uploads it, unpacked like the toolkit does (/opt/ml/code)."""
    root = tmp_path_factory.mktemp("opt-ml-code")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(cloud_training.package_source()))) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return ev.write_synthetic_shapes(tmp_path_factory.mktemp("shapes"), num_classes=3)


def run_script(code_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    environ.update(env, PYTHONPATH=str(code_dir))  # the job's Environment: {"PYTHONPATH": ...}
    return subprocess.run(
        [sys.executable, cloud_training.PYTORCH_PROGRAM, *args],
        cwd=code_dir, env=environ, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_script_from_the_uploaded_source_trains_what_scones_serve_loads(
    code_dir, shapes, tmp_path
) -> None:
    model_dir, output_dir = tmp_path / "model", tmp_path / "output" / "data"
    env = {"SM_CHANNEL_DATASET": str(shapes), "SM_MODEL_DIR": str(model_dir),
           "SM_OUTPUT_DATA_DIR": str(output_dir), "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    done = run_script(code_dir, env, *TINY_ARGS, "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "epoch=1 " in done.stdout and "validation_accuracy=" in done.stdout
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "model.onnx"]
    meta = json.loads((model_dir / "model.json").read_text())
    # the CLI arguments reached the recipe, typed; the data came from the channel
    assert meta["hyperparameters"]["seed"] == 3 and meta["hyperparameters"]["epochs"] == 1
    assert meta["hyperparameters"]["learning_rate"] == 0.05
    assert meta["data"]["source"] == str(shapes) and meta["device"] == "cpu"
    assert json.loads((output_dir / "metrics.json").read_text())["validation"]["n"] > 0
    served = OnnxModel.load(model_dir)  # the server's own loader and its checks
    probs = served.run(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_script_imports_only_what_was_packed(code_dir) -> None:
    # Every local_model module the script loads must come from the package: this venv's editable
    # install would otherwise supply a module that was left out of it (local_model.lst once was).
    probe = ("import sys, local_model.train; print('\\n'.join(m.__file__ for n, m in "
             "sys.modules.items() if n.split('.')[0] == 'local_model'))")  # fmt: skip
    environ = {**os.environ, "PYTHONPATH": str(code_dir)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=code_dir, env=environ,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = [Path(f) for f in done.stdout.split()]
    assert len(files) >= 3 and all(f.is_relative_to(code_dir) for f in files), files


def test_a_bad_hyperparameter_fails_with_its_name_and_status_1(code_dir, shapes, tmp_path) -> None:
    env = {"SM_CHANNEL_DATASET": str(shapes), "SM_MODEL_DIR": str(tmp_path / "m"),
           "SM_OUTPUT_DIR": str(tmp_path)}  # fmt: skip
    done = run_script(code_dir, env, "--epochs", "twelve")
    assert done.returncode == 1
    assert "bad hyperparameter" in done.stderr and "twelve" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "m").exists()
    # /opt/ml/output/failure: SageMaker's FailureReason (the toolkit keeps a file that exists)
    assert "bad hyperparameter" in (tmp_path / "failure").read_text()


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ({"SM_CHANNEL_DATASET": "/d", "SM_CHANNEL_OTHER": "/o"}, "/d"),
        ({"SM_CHANNEL_TRAINING": "/t"}, "/t"),  # the SDK's name for estimator.fit("s3://...")
        ({"SM_CHANNEL_ANYTHING": "/a"}, "/a"),  # a single channel, whatever its name
    ],
)
def test_dataset_channel_is_found_like_the_sdk_names_it(channels, expected) -> None:
    assert train.sagemaker_data_dir(channels) == expected


def test_several_unnamed_channels_are_a_named_error() -> None:
    with pytest.raises(train.TrainingError, match="SM_CHANNEL_A, SM_CHANNEL_B"):
        train.sagemaker_data_dir({"SM_CHANNEL_A": "/a", "SM_CHANNEL_B": "/b"})


def test_device_is_cuda_only_when_pytorch_sees_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    assert train.pick_device() == "cpu"
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: True)
    assert train.pick_device() == "cuda"
