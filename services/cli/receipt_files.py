"""Receipt files beside the documents: their names, and writes that never replace a receipt.

`FILE.receipt.json` is the receipt `notar notarize` writes for FILE; an upgrade of it, or a later
notarization of FILE when that one no longer holds, goes beside it as `FILE.receipt.<tree
size>.json` (SPEC §5: the old file is kept). A client tool never overwrites a receipt with
another: a genuine receipt, even one it cannot check (keys it does not trust, a document
changed since), is evidence someone may need. The one exception is a file the new receipt holds
whole — the same checkpoint and every anchor it had, with more — which `replace_if_held` swaps
atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from pathlib import Path

from merkle.receipt import Receipt

RECEIPT_SUFFIX = ".receipt.json"
_RECEIPT_NAME = re.compile(r"(?P<base>.+\.receipt)(?:\.\d+)?\.json")
_TEMPORARY = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")


def is_receipt_file(name: str) -> bool:
    """Whether a file name is a receipt's (`FILE.receipt.json`, `FILE.receipt.<size>.json`) or a
    receipt being written, so that notarizing a folder skips it."""
    return bool(_RECEIPT_NAME.fullmatch(name) or _TEMPORARY.fullmatch(name))


def beside(path: Path, tree_size: int) -> Path:
    """Where a receipt of tree size `tree_size` goes beside the receipt file `path`:
    `FILE.receipt.<size>.json` for `FILE.receipt.json` or `FILE.receipt.<n>.json`, else
    `NAME.<size>.json` for `NAME.json`."""
    m = _RECEIPT_NAME.fullmatch(path.name)
    base = m.group("base") if m else path.name.removesuffix(".json")
    return path.with_name(f"{base}.{tree_size}.json")


def _written(path: Path, receipt: Receipt) -> Path:
    """A private temporary file beside `path` holding the receipt's canonical form, fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    with open(tmp, "xb") as f:
        f.write(receipt.to_json())
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_new(path: Path, receipt: Receipt) -> bool:
    """Write `receipt` at `path` unless a file is there (False, nothing written): written whole
    first, then linked in place, so a crash leaves no half receipt and no race replaces one."""
    tmp = _written(path, receipt)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True


def holds(new: Receipt, old: Receipt) -> bool:
    """Whether `new` holds all the evidence of `old`: the same notarization in the same checkpoint
    and proof, with every anchor `old` has."""
    return dataclasses.replace(new, anchors=old.anchors) == old and all(a in new.anchors for a in old.anchors)


def replace_if_held(path: Path, new: Receipt, old: Receipt) -> bool:
    """Replace the receipt `old` read from `path` by `new` when `new` holds it (`holds`)."""
    if not holds(new, old):
        return False
    os.replace(_written(path, new), path)
    return True
