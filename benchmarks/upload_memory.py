"""The API process's peak memory for the largest upload it allows: a gzip IDX inflating to
TAAS_MAX_UPLOAD_BYTES of images (a few hundred KB on the wire), into a real `taas api`.

Peak RSS is the kernel's high-water mark (VmHWM) of the API process, read before and after
the upload. It is a memory figure, not a speed one, so a busy machine does not change it
much; the result still says whether the machine was busy. Run: python -m benchmarks.upload_memory
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.datasets.idx_stream import CHUNK_BYTES

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "upload_memory.json"
TAAS = Path(sys.executable).parent / "taas"
TOKEN = "taas_bench_admin_token_0123456789"
SIDE = 28
PORT = 8765


def status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def gzip_images(path: Path, samples: int) -> None:
    """An IDX images file of `samples` 28x28 images, gzip-compressed as it is written."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (samples, SIDE, SIDE))
    image = bytes(range(SIDE)) * SIDE
    with path.open("wb") as file:
        file.write(compressor.compress(header))
        batch = image * 4096
        for start in range(0, samples, 4096):
            file.write(compressor.compress(batch[: (min(4096, samples - start)) * len(image)]))
        file.write(compressor.flush())


def main() -> dict[str, Any]:
    limit = Settings().max_upload_bytes
    samples = (limit - 16) // (SIDE * SIDE)  # the header is 16 bytes
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        env = {**os.environ, "TAAS_DATA_DIR": str(data), "TAAS_ADMIN_TOKEN": TOKEN}
        env["TAAS_SECRET_KEY"] = "bench-secret-key-0123456789"
        subprocess.run([str(TAAS), "migrate"], env=env, check=True, capture_output=True)
        images, labels = data / "images.gz", data / "labels"
        gzip_images(images, samples)
        labels.write_bytes(
            bytes([0, 0, 0x08, 1])
            + samples.to_bytes(4, "big")
            + bytes(i % 10 for i in range(samples))
        )
        api = subprocess.Popen(
            [str(TAAS), "api", "--port", str(PORT)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{PORT}", headers=headers, timeout=600
            ) as client:
                for _ in range(300):
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                # A small upload first: the code path imported and warm, as in service.
                small = {
                    "images": ("i", bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1])),
                    "labels": ("l", bytes([0, 0, 8, 1, 0, 0, 0, 2, 0, 1])),
                }
                assert (
                    client.post("/v1/datasets", files=small, data={"format": "idx"}).status_code
                    == 201
                )
                before = status_bytes(api.pid, "VmHWM")
                started = time.monotonic()
                with images.open("rb") as i, labels.open("rb") as lab:
                    response = client.post(
                        "/v1/datasets",
                        files={"images": ("images.gz", i), "labels": ("labels", lab)},
                        data={"format": "idx"},
                    )
                seconds = time.monotonic() - started
                assert response.status_code == 201, response.text
                peak = status_bytes(api.pid, "VmHWM")
        finally:
            api.terminate()
            api.wait(30)
        load = os.getloadavg()
        result = {
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "upload": {
                "compressed_bytes": images.stat().st_size + labels.stat().st_size,
                "inflated_image_bytes": samples * SIDE * SIDE,
                "stored_bytes": response.json()["bytes"],
                "max_upload_bytes": limit,
            },
            "api_peak_rss_before_bytes": before,
            "api_peak_rss_after_bytes": peak,
            "api_peak_rss_growth_bytes": peak - before,
            "chunk_bytes": CHUNK_BYTES,
            "upload_s": round(seconds, 1),
            "loadavg_1m": load[0],
            "cpus": os.cpu_count(),
            "under_load": load[0] > (os.cpu_count() or 1),
            "note": "upload_s was taken under load and is no speed figure"
            if load[0] > (os.cpu_count() or 1)
            else "",
        }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
