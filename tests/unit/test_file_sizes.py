"""One idea per file: no source file in app/ or worker/ grows past MAX_LINES."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def test_no_source_file_in_app_or_worker_is_over_the_limit() -> None:
    sources = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "worker").rglob("*.py")])
    assert sources, "no sources found"
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in sources}
    over = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert over == {}
