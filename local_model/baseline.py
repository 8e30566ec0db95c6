"""The benchmark's baseline server: FastAPI + the model in PyTorch, one image per request.

What a plain implementation looks like: no batching, no thread pools, the image decoded and the
model run inline in the request handler. `scones bench endpoint` measures our server against it.
The model is the PyTorch twin of model.onnx in the same folder (see ``load_torch_model``), taking
the same (N, 3, H, W) input and returning the same probabilities.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from local_model import LocalModelError, preprocess

LOG = logging.getLogger(__name__)


class TorchModelMissing(LocalModelError):
    """The model directory has no model.pt for the PyTorch baseline."""


def load_torch_model(model_dir: Path):
    """The PyTorch twin of model.onnx, in eval mode.

    Looked for in order: ``model.pt2`` (``torch.export.save``; its ``.module()`` runs eagerly),
    ``model.pt`` as TorchScript (``torch.jit.save``) or as a whole pickled module
    (``torch.save(model)``).
    """
    import torch

    exported, pickled = model_dir / "model.pt2", model_dir / "model.pt"
    if exported.is_file():
        return torch.export.load(str(exported)).module()
    if not pickled.is_file():
        raise TorchModelMissing(
            f"no model.pt2 or model.pt in {model_dir}: the baseline needs the PyTorch model "
            "beside model.onnx (torch.export.save, torch.jit.save or torch.save(model))"
        )
    try:
        module = torch.jit.load(str(pickled), map_location="cpu")
    except RuntimeError:  # not a TorchScript archive: a pickled module
        module = torch.load(pickled, map_location="cpu", weights_only=False)
    if isinstance(module, dict):
        raise TorchModelMissing(
            f"{pickled} holds a state dict; the baseline needs a whole module "
            "(torch.export.save, torch.jit.save or torch.save(model))"
        )
    return module.eval()


def has_torch_model(model_dir: Path) -> bool:
    """Whether the baseline can find a PyTorch model in ``model_dir``."""
    return (model_dir / "model.pt2").is_file() or (model_dir / "model.pt").is_file()


def create_app(model_dir: Path) -> FastAPI:
    """The baseline app: POST /invocations with one image -> JSON list of probabilities."""
    import torch

    meta = json.loads((model_dir / "model.json").read_text())
    spec = dict(meta["input"])
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One core for torch, one for HTTP and the load generator: torch's default (every core)
        # oversubscribes the box and its OpenMP threads then spin, slowing it 10-50x. The
        # baseline gets its best simple setting, not a strawman.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        state["model"] = load_torch_model(model_dir)
        yield
        state.clear()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=200 if "model" in state else 503)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        try:
            image = preprocess.decode_image(await request.body())
        except (preprocess.InvalidImage, preprocess.ImageTooLarge) as err:
            return Response(json.dumps({"message": str(err)}), 400, media_type="application/json")
        x = torch.from_numpy(preprocess.prepare(image, spec)).unsqueeze(0)
        with torch.inference_mode():
            out = state["model"](x)
        if isinstance(out, (tuple, list)):  # a model may also return an OOD score
            out = out[0]
        return Response(json.dumps(out[0].tolist()), media_type="application/json")

    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m local_model.baseline --model DIR --port P`."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m local_model.baseline")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        load_torch_model(args.model)  # fail in one line, before uvicorn starts
    except LocalModelError as err:
        LOG.error("%s", err)
        raise SystemExit(1) from None
    uvicorn.run(
        create_app(args.model),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
