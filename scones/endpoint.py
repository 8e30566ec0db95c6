"""`scones serve` (the local SageMaker endpoint) and `scones bench endpoint` (its benchmark)."""

from __future__ import annotations

import asyncio
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scones import PROJECT_ROOT, SconesError, config
from scones.stack import cpu_s, free_port, stat_fields
from scones.stage import default_dataset

SERVER_START_TIMEOUT = 90.0  # seconds for a server under test to answer /ping
WARMUP_REQUESTS = 300  # per phase, not measured: TorchScript profiles its first ~200 calls
WARMUP_SECONDS = {False: 10.0, True: 3.0}  # bound on the warm-up, full run vs --smoke
# (max requests, max seconds) per measured phase; whichever comes first ends it
FULL_LIMITS = {1: (3000, 15.0), 16: (20000, 20.0)}
SMOKE_LIMITS = {1: (300, 3.0), 16: (1500, 4.0)}
TARGET_RATIO_C16 = 2.0  # the targets, printed beside the figures
TARGET_P50_MS_C1 = 5.0


class BenchError(SconesError):
    """The benchmark could not run: a server did not start or answered errors."""


# ------------------------------ scones serve ------------------------------


# ------------------------------ load generator ------------------------------


@dataclass
class PhaseResult:
    """One measured phase: a server at one concurrency."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    # Server CPU time (user + sys, all threads) per answered request: unlike req/s, it hardly
    # moves when other processes load the machine.
    cpu_ms_per_request: float = float("nan")
    statuses: dict[str, int] = field(default_factory=dict)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _connection_loop(host, port, payloads, budget, deadline, latencies, statuses) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back (raw sockets: cheap)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        i = random.randrange(len(payloads))
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            body = payloads[i % len(payloads)]
            i += 1
            head = (
                f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            writer.write(head + body)
            header = await reader.readuntil(b"\r\n\r\n")
            status = header[9:12].decode()
            length = 0
            for line in header.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc; NaN elsewhere)."""
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return cpu_s(fields) if fields else float("nan")


async def _run_phase(
    url: str, payloads: list[bytes], concurrency: int, limits, warmup_seconds: float, pid: int
) -> PhaseResult:
    host, port = url.removeprefix("http://").split(":")
    max_requests, max_seconds = limits
    warm: list[float] = []
    await asyncio.gather(
        *(
            _connection_loop(
                host,
                int(port),
                payloads,
                [WARMUP_REQUESTS // concurrency + 1],
                time.perf_counter() + warmup_seconds,
                warm,
                {},
            )
            for _ in range(concurrency)
        )
    )
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    budget = [max_requests]  # shared by every connection of the phase
    cpu_before = _cpu_seconds(pid)
    began = time.perf_counter()
    await asyncio.gather(
        *(
            _connection_loop(
                host, int(port), payloads, budget, began + max_seconds, latencies, statuses
            )
            for _ in range(concurrency)
        )
    )
    seconds = time.perf_counter() - began
    cpu = _cpu_seconds(pid) - cpu_before
    latencies.sort()
    ok = statuses.get("200", 0)
    return PhaseResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=len(latencies) - ok,
        seconds=round(seconds, 3),
        rps=round(ok / seconds, 1),
        cpu_ms_per_request=round(cpu * 1000 / ok, 3) if ok else float("nan"),
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 3),
        p90_ms=round(_percentile(latencies, 0.90) * 1000, 3),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 3),
        statuses=statuses,
    )


# ------------------------------ servers under test ------------------------------


def _start(module: str, model: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        module,
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(f"{module} exited ({proc.returncode}): {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    _stop(proc)
    raise BenchError(
        f"{module} did not answer /ping within {SERVER_START_TIMEOUT:.0f} s; see {log}"
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _measure(module, model, log, extra, payloads, smoke: bool) -> dict[int, PhaseResult]:
    """Start one server, measure it at each concurrency, stop it."""
    limits = SMOKE_LIMITS if smoke else FULL_LIMITS
    proc, url = _start(module, model, log, extra)
    try:
        return {
            c: asyncio.run(_run_phase(url, payloads, c, limits[c], WARMUP_SECONDS[smoke], proc.pid))
            for c in sorted(limits)
        }
    finally:
        _stop(proc)


def _synthetic_pngs(count: int = 64) -> list[bytes]:
    """Random 32x32 RGB PNGs (stdlib only) when the real test images are absent."""
    rng = random.Random(0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    images = []
    for _ in range(count):
        rows = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(96)) for _ in range(32))
        ihdr = struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)
        images.append(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b"")
        )
    return images


def load_payloads(data: Path | None = None) -> tuple[list[bytes], str]:
    """The benchmark's request bodies: a staged dataset's test images (default: `scones stage`'s),
    else synthetic PNGs."""
    folder = Path(data or default_dataset()) / "test"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if files:
        return [f.read_bytes() for f in files], str(folder)
    return _synthetic_pngs(), "synthetic 32x32 PNGs (real test images not found)"


def run_benchmark(model: Path, smoke: bool, data: Path | None = None) -> dict:
    """Our server vs the PyTorch baseline on the same images; returns the figures."""
    # lazy: serve loads onnxruntime and FastAPI, which only this benchmark needs here
    from local_model.baseline import has_torch_model
    from local_model.serve import read_model_json

    read_model_json(model)  # a clear error before starting anything
    if not has_torch_model(model):
        raise BenchError(
            f"no model.pt2 or model.pt in {model}: the baseline runs the PyTorch twin of "
            "model.onnx (torch.export.save, torch.jit.save or torch.save(model))"
        )
    payloads, source = load_payloads(data)
    logs = Path(tempfile.mkdtemp(prefix="scones-bench-"))
    ours = _measure(
        "local_model.serve",
        model,
        logs / "ours.log",
        ["--no-capture", "--log-level", "warning"],
        payloads,
        smoke,
    )
    base = _measure("local_model.baseline", model, logs / "baseline.log", [], payloads, smoke)
    for name, phases in (("ours", ours), ("baseline", base)):
        for phase in phases.values():
            if phase.errors:
                raise BenchError(
                    f"{name} answered {phase.statuses} at c{phase.concurrency}; see {logs}"
                )
    ratio = ours[16].rps / base[16].rps if base[16].rps else float("inf")
    return {
        "ours_rps_c16": ours[16].rps,
        "baseline_rps_c16": base[16].rps,
        "ratio_c16": round(ratio, 2),
        "ours_p50_ms_c1": ours[1].p50_ms,
        "ours_p99_ms_c1": ours[1].p99_ms,
        "ours_p50_ms_c16": ours[16].p50_ms,
        "ours_p99_ms_c16": ours[16].p99_ms,
        "ours_rps_c1": ours[1].rps,
        "baseline_p50_ms_c1": base[1].p50_ms,
        "baseline_p99_ms_c1": base[1].p99_ms,
        "baseline_p50_ms_c16": base[16].p50_ms,
        "baseline_p99_ms_c16": base[16].p99_ms,
        "baseline_rps_c1": base[1].rps,
        "ours_cpu_ms_per_request_c16": ours[16].cpu_ms_per_request,
        "baseline_cpu_ms_per_request_c16": base[16].cpu_ms_per_request,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "target_ratio_c16_met": ratio >= TARGET_RATIO_C16,
        "target_p50_ms_c1_met": ours[1].p50_ms <= TARGET_P50_MS_C1,
        "smoke": smoke,
        "model": str(model),
        "images": source,
        "cpus": os.cpu_count(),
        "server_settings": {
            "max_batch": config.MODEL_MAX_BATCH,
            "max_wait_ms": config.MODEL_MAX_WAIT_MS,
            "intra_op_threads": config.MODEL_INTRA_OP_THREADS,
            "decode_threads": config.MODEL_DECODE_THREADS,
        },
        "phases": {
            "ours": [asdict(p) for p in ours.values()],
            "baseline": [asdict(p) for p in base.values()],
        },
        "logs": str(logs),
    }
