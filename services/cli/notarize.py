"""`notar notarize PATH…`: hash files locally with BLAKE3, notarize the digests in bulk (or upload
the documents with --upload) and write FILE.receipt.json (the receipt's canonical form, SPEC §5)
beside each file or into --out DIR.

The server is trusted only as far as DATA_DIR's trust file (or --key / --policy) says
(services/cli/trust.py): its keys must be reconciled with the pinned ones, and each receipt it
answers must verify under them, for this file's digest, before it is written. Files whose receipt
is already there and valid under the trusted keys (of any period of the log's key history) are
skipped, so an interrupted run resumes and a key change re-notarizes nothing. A receipt file is
never replaced: when FILE.receipt.json is there but does not hold for the file as it is now (the
file changed, or it is under keys not trusted here), the new receipt goes beside it as
FILE.receipt.<tree size>.json (services/cli/receipt_files.py)."""

from __future__ import annotations

import argparse
import asyncio
import glob
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
from services.cli.receipt_files import RECEIPT_SUFFIX, beside, is_receipt_file, write_new
from services.cli.trust import ClientTrust
from services.sdk import NotarClient
from storage.errors import ConfigError, VerificationError

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
                    if not is_receipt_file(name) and f.is_file():
                        yield Job(f, receipt_path(f, p, out_dir), f.stat().st_size)
        else:
            yield Job(p, receipt_path(p, p.parent, out_dir), p.stat().st_size)


def hash_file(path: Path) -> str:
    """BLAKE3 of a file, memory-mapped and multi-threaded for big files."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if path.stat().st_size:
        h.update_mmap(path)
    return "blake3:" + h.hexdigest()


def _receipts_there(job: Job) -> Iterator[Receipt]:
    """The receipts in the job's receipt file and beside it (FILE.receipt.<tree size>.json) that
    read; the others are left alone."""
    later = glob.escape(job.out.name.removesuffix(".json")) + ".*.json"  # FILE.receipt.<size>.json
    for path in [job.out, *sorted(job.out.parent.glob(later))]:
        try:
            yield Receipt.from_json(path.read_bytes())
        except (OSError, ValueError):
            continue


def already_done(job: Job, trust: ClientTrust) -> bool:
    """Whether a receipt of the file as it is now, valid under the keys trusted for its log at its
    size, is in the job's receipt file or beside it."""
    for there in _receipts_there(job):
        keys = trust.keys_at(there.origin, there.tree_size)
        if keys and verify_receipt(there, keys=keys, digest=job.digest).valid:
            return True
    return False


def accept(job: Job, receipt: Receipt, trust: ClientTrust) -> None:
    """VerificationError unless the server's `receipt` is one of the job's file, valid under the
    trusted keys: nothing is written for a receipt that is not."""
    result = verify_receipt(receipt, keys=trust.keys_at(receipt.origin, receipt.tree_size), digest=job.digest)
    if not result.valid:
        failed = result.failed[0]
        raise VerificationError(
            f"the server's receipt for {job.path} fails check '{failed.name}' under the trusted keys: "
            f"{failed.detail}; it is not written"
        )


def keep(job: Job, receipt: Receipt, notes: list[str]) -> None:
    """Write the job's new receipt: at FILE.receipt.json, or beside the one there (never over it)."""
    if write_new(job.out, receipt):
        return
    out = beside(job.out, receipt.tree_size)
    if not write_new(out, receipt):
        raise VerificationError(
            f"{job.out} and {out} are both taken; the receipt of {job.path} is not written"
        )
    notes.append(
        f"{job.out} does not hold for {job.path} as it is now (changed since, or under keys not trusted "
        f"here): kept as it is; the new receipt is {out}"
    )


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
    config = config_from(ns, dict(os.environ))
    client_config = config.client
    url = client_config.url
    api_key = client_config.api_key.need(
        "to notarize (create one with `notar tenant add NAME` on the server)"
    )
    jobs = list(find_files(ns.paths, ns.out))
    quiet = ns.quiet or not sys.stderr.isatty()
    trust = ClientTrust.of(ns, config.store.data_dir)
    notes: list[str] = []
    async with NotarClient(url, api_key) as client:
        trust.reconcile(await client.keys(), url)
        with _progress("hashing", sum(j.size for j in jobs), quiet=quiet) as bar:
            for job in jobs:
                job.digest = await asyncio.get_running_loop().run_in_executor(None, hash_file, job.path)
                bar.update(job.size)
        todo = [j for j in jobs if not already_done(j, trust)]
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
                        accept(job, answer.receipt, trust)
                        keep(job, answer.receipt, notes)
        else:
            with _progress("notarizing", len(todo), quiet=quiet, unit="file") as bar:
                for i in range(0, len(todo), ns.batch):
                    batch = todo[i : i + ns.batch]
                    receipts = await client.notarize([j.digest for j in batch])
                    for job, receipt in zip(batch, receipts, strict=True):
                        accept(job, receipt, trust)
                        keep(job, receipt, notes)
                    bar.update(len(batch))
    trust.save()
    print(f"notarized {len(todo)} file(s), {skipped} already had a valid receipt")
    if unstored:
        print(f"uploaded {len(unstored)} file(s) that had a valid receipt but were not stored; receipts kept")
    for note in trust.notes + notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def notarize(ns: argparse.Namespace) -> int:
    return asyncio.run(run(ns))
