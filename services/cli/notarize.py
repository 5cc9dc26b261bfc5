"""`notar notarize PATH…`: hash files locally with BLAKE3, notarize the digests in bulk (or upload
the documents with --upload) and write FILE.receipt.json (the receipt's canonical form, SPEC §5)
beside each file or into --out DIR. Files whose receipt is already there and valid under the
server's keys are skipped, so an interrupted run resumes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from tqdm import tqdm

from merkle.receipt import Receipt
from merkle.verdict import verify_receipt
from services.cli.commands import config_from
from services.sdk import NotarClient, trusted_keys
from storage.errors import ConfigError

RECEIPT_SUFFIX = ".receipt.json"
READ_CHUNK = 1 << 20


@dataclass
class Job:
    path: Path
    out: Path
    size: int
    digest: str = ""


def receipt_path(path: Path, root: Path, out_dir: Path | None) -> Path:
    if out_dir is None:
        return path.with_name(path.name + RECEIPT_SUFFIX)
    return out_dir / path.relative_to(root).with_name(path.name + RECEIPT_SUFFIX)


def find_files(paths: list[Path], out_dir: Path | None) -> Iterator[Job]:
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory", setting="PATH")
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    if not name.endswith(RECEIPT_SUFFIX) and f.is_file():
                        yield Job(f, receipt_path(f, p, out_dir), f.stat().st_size)
        else:
            yield Job(p, receipt_path(p, p.parent, out_dir), p.stat().st_size)


def hash_file(path: Path) -> str:
    """BLAKE3 of a file, memory-mapped and multi-threaded for big files."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if path.stat().st_size:
        h.update_mmap(path)
    return "blake3:" + h.hexdigest()


def write_receipt(path: Path, receipt: Receipt) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(receipt.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def already_done(job: Job, keys: list[str]) -> bool:
    try:
        receipt = job.out.read_bytes()
    except OSError:
        return False
    return verify_receipt(receipt, keys=keys, digest=job.digest).valid


async def _file_chunks(path: Path, bar: tqdm[Any]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    f = await loop.run_in_executor(None, path.open, "rb")
    try:
        while data := await loop.run_in_executor(None, f.read, READ_CHUNK):
            bar.update(len(data))
            yield data
    finally:
        f.close()


def _progress(desc: str, total: int, *, quiet: bool, unit: str = "B") -> tqdm[Any]:
    """A progress bar on stderr, off when `quiet`: bytes (shown as kB, MB…) unless `unit` says."""
    return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=desc, disable=quiet, file=sys.stderr)


async def run(ns: argparse.Namespace) -> int:
    client_config = config_from(ns, dict(os.environ)).client
    url = client_config.url
    api_key = client_config.api_key.need(
        "to notarize (create one with `notar tenant add NAME` on the server)"
    )
    jobs = list(find_files(ns.paths, ns.out))
    quiet = ns.quiet or not sys.stderr.isatty()
    async with NotarClient(url, api_key) as client:
        try:
            keys = trusted_keys(await client.keys())
        except ValueError as e:
            raise ConfigError(f"URL {url}: {e}", setting="URL") from e
        with _progress("hashing", sum(j.size for j in jobs), quiet=quiet) as bar:
            for job in jobs:
                job.digest = await asyncio.get_running_loop().run_in_executor(None, hash_file, job.path)
                bar.update(job.size)
        todo = [j for j in jobs if not already_done(j, keys)]
        skipped = len(jobs) - len(todo)
        unstored: list[Job] = []
        if ns.upload:
            # A valid receipt does not mean the server holds the document: those it does not
            # are uploaded too, and keep their receipt (the earlier one proves the earlier time).
            pending = {id(j) for j in todo}
            unstored = [j for j in jobs if id(j) not in pending and not await client.stored(j.digest)]
            kept = {id(j) for j in unstored}
            with _progress("uploading", sum(j.size for j in todo + unstored), quiet=quiet) as bar:
                for job in todo + unstored:
                    answer = await client.upload(_file_chunks(job.path, bar))
                    if answer.document["digest"] != job.digest:
                        raise ConfigError(f"{job.path} changed while it was uploaded", setting="PATH")
                    if id(job) not in kept:
                        write_receipt(job.out, answer.receipt)
        else:
            with _progress("notarizing", len(todo), quiet=quiet, unit="file") as bar:
                for i in range(0, len(todo), ns.batch):
                    batch = todo[i : i + ns.batch]
                    receipts = await client.notarize([j.digest for j in batch])
                    for job, receipt in zip(batch, receipts, strict=True):
                        write_receipt(job.out, receipt)
                    bar.update(len(batch))
    print(f"notarized {len(todo)} file(s), {skipped} already had a valid receipt")
    if unstored:
        print(f"uploaded {len(unstored)} file(s) that had a valid receipt but were not stored; receipts kept")
    return 0


def notarize(ns: argparse.Namespace) -> int:
    return asyncio.run(run(ns))
