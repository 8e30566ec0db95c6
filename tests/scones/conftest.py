"""Fixtures for `scones stage`: a synthetic CIFAR-100 tarball, a 127.0.0.1 HTTP server (Range)."""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from scones import config
from scones.dataset import CIFAR100_FINE_NAMES

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: helpers beside this file
from cifar_format import write_split, write_tarball  # noqa: E402

# CIFAR-100's 20 superclass names in label order (the tarball's meta).
COARSE_NAMES = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables "
    "household_electrical_devices household_furniture insects large_carnivores "
    "large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores "
    "medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1 "
    "vehicles_2"
).split()
# A dozen classes with their real fine -> coarse labels: all ten vehicles plus two others.
SYNTHETIC_COARSE = {
    "apple": 4, "bicycle": 18, "bus": 18, "lawn_mower": 19, "motorcycle": 18,
    "pickup_truck": 18, "rocket": 19, "streetcar": 19, "tank": 19, "tractor": 19, "train": 18,
    "whale": 0,
}  # fmt: skip
PER_CLASS = {"train": 6, "test": 2}  # images per class and split


@dataclass
class SyntheticCifar:
    """A small CIFAR-100 python tarball in the real layout, plus the images it holds."""

    tarball: Path
    md5: str
    folder: Path  # the extracted cifar-100-python/ folder
    # split -> file name -> (fine label, HxWx3 uint8 image as generated)
    images: dict[str, dict[str, tuple[int, np.ndarray]]]

    def names_of(self, split: str, fine_name: str) -> set[str]:
        """File names of one class in one split."""
        fine = CIFAR100_FINE_NAMES.index(fine_name)
        return {fn for fn, (label, _) in self.images[split].items() if label == fine}


def _write_cifar(root: Path, seed: int = 7) -> SyntheticCifar:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    images: dict[str, dict[str, tuple[int, np.ndarray]]] = {}
    row = 0
    for split, per_class in PER_CLASS.items():
        pixels, fine, coarse, names = [], [], [], []
        images[split] = {}
        # interleave classes, like the real arrays (not grouped by label)
        for k in range(per_class):
            for name, coarse_label in SYNTHETIC_COARSE.items():
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                # a `bike_*` motorcycle, as in the real data: a name does not tell the class
                stem = "bike" if (name == "motorcycle" and k == 0) else name
                fn = f"{stem}_s_{row:06d}.png"
                row += 1
                pixels.append(img)
                fine.append(CIFAR100_FINE_NAMES.index(name))
                coarse.append(coarse_label)
                names.append(fn)
                images[split][fn] = (fine[-1], img)
        write_split(folder, split, pixels, fine, coarse, names)
    tarball, md5 = write_tarball(folder, CIFAR100_FINE_NAMES, COARSE_NAMES)
    return SyntheticCifar(tarball=tarball, md5=md5, folder=folder, images=images)


@pytest.fixture(scope="session")
def cifar(tmp_path_factory) -> SyntheticCifar:
    """The synthetic CIFAR-100 tarball (12 classes, 6 train + 2 test images each)."""
    return _write_cifar(tmp_path_factory.mktemp("cifar"))


@dataclass
class RangeServer:
    """A threaded HTTP file server on 127.0.0.1 that honours `Range: bytes=N-`.

    `drops[path] = n` makes the next n responses for path send half the body, then close.
    """

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, path: str, body: bytes) -> str:
        """Publish body at path; return its URL."""
        self.files[path] = body
        return self.url + path

    def reset(self) -> None:
        """Forget files, drops and the request log."""
        with self.lock:
            self.files.clear()
            self.drops.clear()
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: RangeServer  # set on the subclass per server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state = self.state
        rng = self.headers.get("Range")
        with state.lock:
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            drop = state.drops.get(self.path, 0)
            if drop:
                state.drops[self.path] = drop - 1
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if drop:  # the connection dies mid-way: promise everything, send half, hang up
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture(scope="session")
def _range_server():
    state = RangeServer()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="range-server", daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def http_server(_range_server) -> RangeServer:
    """The 127.0.0.1 file server, emptied for each test."""
    _range_server.reset()
    return _range_server


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    """A private SCONES state dir per test: the download cache and default --out live there."""
    path = tmp_path / "state"
    monkeypatch.setattr(config, "STATE_DIR", path)
    return path
