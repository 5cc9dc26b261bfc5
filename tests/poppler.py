"""A PDF read back with Debian's poppler-utils (pdfinfo, pdftotext, pdftoppm), tools nobody here
wrote: what a reader of the paper would find on it. scripts/install --test installs them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image

from tests.needs import missing as needed

GREEN = (17, 99, 41)  # the report's and the page's green (#116329)


def poppler() -> None:
    """Skips (fails under CI=true) when poppler-utils is missing."""
    missing = [t for t in ("pdfinfo", "pdftotext", "pdftoppm") if shutil.which(t) is None]
    if missing:
        needed(f"{', '.join(missing)} missing: scripts/install --test installs Debian's poppler-utils")


def run(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def pages(pdf: Path) -> int:
    info = run("pdfinfo", str(pdf))
    found = re.search(r"^Pages:\s+(\d+)$", info, re.M)
    assert found, info
    return int(found.group(1))


def text_of(pdf: Path) -> str:
    """The page's text, laid out as on the page (pdftotext -layout)."""
    return run("pdftotext", "-layout", str(pdf), "-")


def picture(pdf: Path, tmp: Path, dpi: int = 60) -> Image.Image:
    """The page as pixels, rendered by pdftoppm."""
    run("pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(pdf), str(tmp / "page"))
    return Image.open(tmp / "page.png").convert("RGB")


def heading_band(pdf: Path, top: str, bottom: str) -> tuple[float, float]:
    """Where, as fractions of the page's height, the words `top` and `bottom` stand (pdftotext -bbox)."""
    html = run("pdftotext", "-bbox", str(pdf), "-")
    height = float(re.search(r'<page width="[\d.]+" height="([\d.]+)"', html).group(1))  # type: ignore[union-attr]
    ys = {}
    for word in (top, bottom):
        found = re.search(rf'yMin="([\d.]+)" xMax="[\d.]+" yMax="[\d.]+">{word}</word>', html)
        assert found, f"{word!r} is not on the page"
        ys[word] = float(found.group(1)) / height
    return ys[top], ys[bottom]


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    return sum(abs(a - b) for a, b in zip(pixel, colour, strict=True)) < 60


def count(img: Image.Image, box: tuple[int, int, int, int], test: Any) -> int:
    data = img.crop(box).tobytes()
    return sum(1 for p in zip(data[0::3], data[1::3], data[2::3], strict=True) if test(p))
