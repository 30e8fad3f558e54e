"""Screenshot an HTML page (the audit report) in headless Chromium, to look at it.

Usage::

    .venv/bin/python scripts/screenshot.py report.html report.png [--size 1280,2400]

Chromium comes from Debian's packages (``apt-get install -y chromium``); it runs offline, with a
throwaway profile, and never fetches anything (the audit page has no external resources).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(html: Path, png: Path, size: str = "1280,2400") -> Path:
    """Render ``html`` in headless Chromium and write a PNG of the given window size."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={png.resolve()}", f"--window-size={size}", html.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    return png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--size", default="1280,2400", help="window WIDTH,HEIGHT (default 1280,2400)")
    args = ap.parse_args(argv)
    print(screenshot(args.html, args.png, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
