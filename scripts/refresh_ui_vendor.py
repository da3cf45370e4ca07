"""Refresh the dashboard's and the OpenAPI console's third-party files from the npm registry.

Run by hand when a pinned version changes (`python scripts/refresh_ui_vendor.py`); the
fetched files are committed, so running or testing taas never needs Node.js or the network.
Each tarball is checked against the registry's sha512 integrity before anything is written,
and app/ui/vendor/versions.json records what was taken from where.
"""

import base64
import hashlib
import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "app" / "ui" / "vendor"
REGISTRY = "https://registry.npmjs.org"

# package -> (pinned version, {file in the tarball: file in app/ui/vendor/<package>/}).
# ReDoc stays on 2.x: 3.x's standalone bundle is an ES module that FastAPI's page cannot load.
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "swagger-ui-dist": (
        "5.35.0",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui.css": "swagger-ui.css",
            "favicon-32x32.png": "favicon-32x32.png",
            "LICENSE": "LICENSE",
            "NOTICE": "NOTICE",
        },
    ),
    "redoc": (
        "2.5.4",
        {"bundles/redoc.standalone.js": "redoc.standalone.js", "LICENSE": "LICENSE"},
    ),
    "uplot": (
        "1.6.32",
        {
            "dist/uPlot.esm.js": "uPlot.esm.js",
            "dist/uPlot.min.css": "uPlot.min.css",
            "LICENSE": "LICENSE",
        },
    ),
}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        body: bytes = answer.read()
        return body


def refresh(name: str, version: str, files: dict[str, str]) -> dict[str, object]:
    meta = json.loads(fetch(f"{REGISTRY}/{name}/{version}"))
    tarball = fetch(meta["dist"]["tarball"])
    algorithm, _, expected = meta["dist"]["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{name}@{version}: tarball integrity mismatch")
    target = VENDOR / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for source, dest in files.items():
            member = archive.extractfile(f"package/{source}")
            if member is None:
                raise SystemExit(f"{name}@{version}: no {source} in the tarball")
            (target / dest).write_bytes(member.read())
    return {
        "version": version,
        "license": meta.get("license"),
        "tarball": meta["dist"]["tarball"],
        "integrity": meta["dist"]["integrity"],
        "files": sorted(files.values()),
    }


def main() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest = {name: refresh(name, version, files) for name, (version, files) in PACKAGES.items()}
    (VENDOR / "versions.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({name: entry["version"] for name, entry in manifest.items()}))


if __name__ == "__main__":
    main()
