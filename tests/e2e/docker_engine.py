"""The docker engine and the local base image the compose test builds on.

No image registry is reachable on the test machines, so the base image is made from
Debian's packages with debootstrap, once, and kept by name for the next run.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEBIAN_MIRROR = "http://deb.debian.org/debian"
SOURCES = Path("/etc/apt/sources.list.d")


def docker(*args: str, timeout_s: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done.stdout


def image_exists(name: str) -> bool:
    inspect = subprocess.run(["docker", "image", "inspect", name], capture_output=True, timeout=60)
    return inspect.returncode == 0


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@contextmanager
def running_engine(log: Path) -> Iterator[None]:
    """The engine, started here (and stopped by its PID afterwards) if none answers. There
    is no init system on the test machines, so nothing else would start it."""
    if engine_answers():
        yield
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        raise AssertionError("no docker engine answers and dockerd is not installed")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while not engine_answers():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not start: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def apt_mirror() -> str:
    """The Debian mirror apt already uses here (deb822 `URIs:` of the bookworm suite)."""
    for source in sorted(SOURCES.glob("*.sources")):
        for stanza in source.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            suites = fields.get("Suites", "").split()
            uri = fields.get("URIs", "").strip().split(" ")[0]
            if "bookworm" in suites and uri.rstrip("/").endswith("/debian"):
                return uri
    return DEBIAN_MIRROR


def base_image(name: str) -> float:
    """Make the Debian bookworm image `name` unless it exists; the seconds it took."""
    if image_exists(name):
        return 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="taas-rootfs-") as root:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", root, apt_mirror()],
            capture_output=True,
            check=True,
            timeout=900,
        )
        # The downloaded packages would only make every image larger.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (Path(root) / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        with subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE) as tar:
            imported = subprocess.run(
                ["docker", "import", "-", name], stdin=tar.stdout, capture_output=True, timeout=600
            )
        assert tar.returncode == 0 and imported.returncode == 0, imported.stderr
    return time.monotonic() - started


def build_inputs(local: Path) -> None:
    """docker/local/: this machine's CPU torch wheel (pip's find-links) and CA bundle, so
    the image installs torch without a download and pip trusts this machine's proxy."""
    wheels = local / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    find_links = Path(os.environ.get("TAAS_TEST_TORCH_WHEELS", "/opt/wheels"))
    for wheel in find_links.glob("torch-*+cpu-cp311-*.whl"):
        target = wheels / wheel.name
        if not target.exists():
            shutil.copyfile(wheel, target)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copyfile(bundle, local / "ca-certificates.crt")
