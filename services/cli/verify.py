"""`notar verify RECEIPT [FILE]`: check a receipt offline, trusting only the keys given.

Prints a verdict a judge can read, then every check — ✓ ok, ✗ failed, – not checked (with the
reason) — and what it means; `--json` for machines (`ReceiptResult.to_obj`). The verdict never
says "every check holds" when a check was not made: it lists what was not checked. Exit status 0
when no check failed, 1 when one failed, 2 when the receipt is malformed or unreadable, or the
command is unusable (no key, a malformed key). No network unless `--online` (EVM anchors checked
against EVM_RPC; keys fetched from URL's /v1/keys when none is given — that trusts the server,
and says so; the receipt's tree checked to be in the log URL publishes now: services/cli/
verify_online.py). `--report FILE.pdf` also writes the verdict as a one-page PDF a court can file
(services/cli/report.py)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509

from merkle.aggregate import AnchorTarget
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from merkle.checks import AnchorVerdict, AnchorVerifier, Check, Status
from merkle.note import NoteVerifier, parse_note
from merkle.receipt import RECEIPT_FORMAT, Anchor, Receipt
from merkle.trust import Trust
from merkle.verdict import ReceiptResult, split_keys, verify_receipt
from services.cli.commands import config_from
from services.cli.evidence import anchor_kind, why_not
from services.cli.evidence import meaning as meaning_of
from services.common.components import ChainsConfig
from services.published.trust import document_trust
from storage.errors import ConfigError

MARKS = {Status.OK: "✓", Status.FAILED: "✗", Status.NOT_CHECKED: "–"}
KNOWN_ANCHORS = {"local": "no verifier", "evm": "needs --online", "rfc3161": "needs --tsa-ca"}


def load_receipt(path: Path) -> Receipt:
    """The receipt in `path`, read strictly (`Receipt.from_json`); ConfigError (exit 2) with one
    line when it is unreadable, not JSON, or not a well-formed notar.receipt.v2 receipt (a v1
    receipt, a member named twice or unknown, more than 16 anchors...)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read receipt {path}: {e.strerror}", setting="RECEIPT") from e
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{path} is not JSON: {e}", setting="RECEIPT") from e
    saved = saved_answer(value)
    if saved is not None:
        raise ConfigError(
            f"{path} is a saved API answer, not a receipt: {saved}; extract it with: "
            f"jq '.{'receipt' if 'receipt' in value else 'receipts[0]'}' {path} > receipt.json",
            setting="RECEIPT",
        )
    try:
        return Receipt.from_json(data)
    except ValueError as e:
        raise ConfigError(f"{path} is not a usable {RECEIPT_FORMAT} receipt: {e}", setting="RECEIPT") from e


def saved_answer(value: Any) -> str | None:
    """Where the receipt is, when `value` is an API answer saved whole (`{"receipt": …}` of
    PUT /v1/documents, `{"receipts": […]}` of POST /v1/digests or ?all=true), or None."""
    if not isinstance(value, dict) or "format" in value:
        return None
    if isinstance(value.get("receipt"), dict):
        return 'the receipt is its "receipt" member'
    receipts = value.get("receipts")
    if isinstance(receipts, list) and receipts and all(isinstance(r, dict) for r in receipts):
        if len(receipts) == 1:
            return 'the receipt is the one in its "receipts" list'
        return f'its "receipts" list holds {len(receipts)} receipts, one per digest in the order sent'
    return None


async def server_keys(url: str) -> list[str]:
    """The keys `url` publishes at /v1/keys; ConfigError naming URL when they are not usable."""
    from services.sdk import NotarClient, trusted_keys

    async with NotarClient(url) as client:
        doc = await client.keys()
    try:
        return trusted_keys(doc)
    except ValueError as e:
        raise ConfigError(f"the keys URL {url} publishes are not usable: {e}", setting="URL") from e


def read_policy(path: Path, notes: list[str]) -> Trust:
    """The trust of `--policy FILE`: a C2SP tlog-policy text, or a saved /v1/keys document (its
    policy, and its rotation statements for the keys' periods); ConfigError (exit 2) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the policy {path}: {e.strerror}", setting="POLICY") from e
    try:
        if data.lstrip().startswith(b"{"):
            return document_trust(orjson.loads(data))
        trust = Trust.from_policy(data)
    except (ValueError, orjson.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a usable policy or keys document: {e}", setting="POLICY") from e
    origins = [log.origin for log in trust.policy.logs] if trust.policy is not None else []
    several = sorted({o for o in origins if origins.count(o) > 1})
    if several:
        notes.append(
            f"the policy lists several log keys of {', '.join(several)} and no rotation statements: each "
            "is trusted at every tree size (the /v1/keys document carries the statements that give "
            "each key its period)"
        )
    return trust


def trusted_keys(ns: argparse.Namespace, url: str, notes: list[str]) -> list[str]:
    """`--key` values, or with `--online` and none given (nor `--policy`), the keys `url` publishes
    (noted); each checked to be a verifier key (ConfigError, exit 2, otherwise)."""
    keys = list(ns.key)
    if not keys and ns.policy is None:
        if not ns.online:
            raise ConfigError(
                "give the log's verifier key with --key (from the deployment's README or "
                "GET /v1/keys; its name is the log's origin); add the clock key to check the signed time",
                setting="KEY",
            )
        keys = asyncio.run(server_keys(url))
        notes.append(f"keys were fetched from {url}: this trusts that server")
    for key in keys:
        try:
            split_keys([key])
        except ValueError as e:
            raise ConfigError(f"verifier key {key[:100]!r} is unusable: {e}", setting="KEY") from e
    return keys


def online_evm(
    receipt: Receipt, keys: Trust, verifiers: dict[str, AnchorVerifier], chains: ChainsConfig
) -> AnchorVerifier:
    """The `evm` verifier of `--online`: each evm anchor that commits to the receipt's checkpoint
    (merkle decides which, and the target: the checkpoint or an aggregate including it) is
    checked on the chain at EVM_RPC first, then its verdict is given to the verifier by anchor."""
    wanted: dict[int, tuple[Anchor, AnchorTarget]] = {}

    def collect(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        wanted[id(anchor)] = (anchor, target)
        return AnchorVerdict(Status.NOT_CHECKED, "not asked yet")

    verify_receipt(receipt, keys=keys, anchor_verifiers={**verifiers, "evm": collect})
    verdicts = asyncio.run(_on_chain(list(wanted.values()), chains)) if wanted else {}

    def evm(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        return verdicts[id(anchor)]  # the receipt's own Anchor objects: matched by identity

    return evm


async def _on_chain(
    anchors: list[tuple[Anchor, AnchorTarget]], chains: ChainsConfig
) -> dict[int, AnchorVerdict]:
    from services.anchor.chains.evm import verify_online
    from services.anchor.chains.evm_rpc import JsonRpc

    rpc = JsonRpc(chains.evm_rpc.need("to check EVM anchors with --online"))
    try:
        return {
            id(anchor): await verify_online(
                anchor.fields(),
                target,
                rpc=rpc,
                confirmations=chains.evm_confirmations,
                contract=chains.evm_contract.value,
            )
            for anchor, target in anchors
        }
    finally:
        await rpc.close()


def trust_of(ns: argparse.Namespace, url: str, notes: list[str]) -> Trust:
    """`--policy` with any `--key` added (trusted at every size), or the `--key` values alone."""
    keys = trusted_keys(ns, url, notes)
    if ns.policy is None:
        return Trust.of(keys)
    trust = read_policy(ns.policy, notes)
    extra = Trust.of(keys)
    return dataclasses.replace(trust, logs=trust.logs + extra.logs, clocks=trust.clocks + extra.clocks)


def trusted_verifiers(trust: Trust) -> list[NoteVerifier]:
    """Every key ``trust`` holds: log keys (of every period), clock keys, the policy's witnesses."""
    keys: list[NoteVerifier] = [*trust.all_log_keys(), *trust.clocks]
    keys += [p.clock for h in trust.histories for p in h.periods if p.clock is not None]
    if trust.policy is not None:
        keys += [w.key for w in trust.policy.witnesses]
    return keys


def trusted_list(trust: Trust) -> list[str]:
    """Every key ``trust`` holds, once each, as verifier keys (the report lists what was trusted)."""
    keys = trusted_verifiers(trust)
    texts = [k.to_key() for k in keys if hasattr(k, "to_key")]  # every verifier notar makes has it
    return list(dict.fromkeys(t for t in texts if isinstance(t, str)))


def check(ns: argparse.Namespace) -> tuple[ReceiptResult, list[str], Trust, list[x509.Certificate]]:
    """The result, notes for the reader, what was trusted (keys, policy) and the trusted TSA CAs."""
    config = config_from(ns, dict(os.environ))
    receipt = load_receipt(ns.receipt)
    notes: list[str] = []
    keys = trust_of(ns, config.client.url, notes)
    cas = []
    ca_file = ns.tsa_ca or config.chains.tsa_ca_file.value
    if ca_file:
        try:
            cas = load_certificates(Path(ca_file).read_bytes())
        except (OSError, ValueError) as e:
            raise ConfigError(f"TSA_CA_FILE {ca_file}: {e}", setting="TSA_CA_FILE") from e
    verifiers = offline_anchor_verifiers(keys=keys.all_log_keys(), tsa_cas=cas)
    if ns.online:
        verifiers["evm"] = online_evm(receipt, keys, verifiers, config.chains)
    if ns.file is not None and not ns.file.is_file():
        raise ConfigError(f"{ns.file}: no such file", setting="FILE")
    document = _chunks(ns.file) if ns.file is not None else None
    result = verify_receipt(receipt, keys=keys, document=document, anchor_verifiers=verifiers)
    if ns.online and result.receipt is not None:
        from services.cli.verify_online import published_log

        found = asyncio.run(published_log(result.receipt, keys, config.client.url))
        if isinstance(found, str):
            notes.append(found)
        else:
            result = dataclasses.replace(result, checks=(*result.checks, found))
    return result, notes, keys, cas


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(1 << 20):
            yield data


def _not_checked(c: Check, result: ReceiptResult) -> str:
    """A few words on a check that was not made, for the verdict line."""
    if c.name == "document":
        return "the document (none given)"
    if c.name == "signed time":
        return "the signed time (no clock key)"
    if c.name == "witnesses":
        return "the witnesses (the policy asks for none)"
    kinds = {f"anchor {i + 1} ({a.type[:40]})": a.type for i, a in enumerate(result.anchors)}
    kind = kinds.get(c.name)
    if kind is not None:
        return f"{c.name[:-1]}, {KNOWN_ANCHORS.get(kind, 'unknown type')})"
    return c.name


def key_hint(result: ReceiptResult, keys: Trust | Sequence[str]) -> str | None:
    """Why the witnesses check failed when the quorum is not met (cosignatures arrive in upgraded
    receipts); why the log signature failed: which keys did sign the tree head (none of them
    trusted), and when no trusted log key is named after the receipt's origin, that a log key
    signs only the log it is named after (SPEC §2)."""
    witnesses = result.check("witnesses")
    if witnesses is not None and witnesses.status is Status.FAILED and "not met" in witnesses.detail:
        return (
            "witnesses cosign a checkpoint after the receipt is issued: `notar receipt upgrade RECEIPT` "
            "fetches the receipt on a witnessed checkpoint"
        )
    check = result.check("log signature")
    if check is None or check.ok or result.origin is None or result.receipt is None:
        return None
    trust = keys if isinstance(keys, Trust) else Trust.of(keys)
    known = {(v.name, v.key_id) for v in trusted_verifiers(trust)}
    try:
        signatures = parse_note(result.receipt.checkpoint).signatures
    except ValueError:
        signatures = ()
    others = [f"{s.name} (key ID {s.key_id:08x})" for s in signatures if (s.name, s.key_id) not in known]
    signed = f"The tree head is signed by {', '.join(others)}, which you do not trust" if others else ""
    names = sorted({v.name for v in trust.all_log_keys()})
    if result.origin in names:
        return signed or None
    given = ", ".join(names) if names else "none"
    named = (
        f"no log key you gave (--key) is named after the receipt's origin {result.origin!r}: a log "
        f"key's name is the origin of the log it signs (log keys given: {given})"
    )
    return f"{signed}; {named}" if signed else named


def render(result: ReceiptResult, file_given: bool, keys: Trust | Sequence[str] = ()) -> str:
    """The verdict, then each check with its mark: ✓ ok, ✗ failed, – not checked."""
    lines = []
    if result.failed:
        failed = result.failed[0]
        lines.append(f"✗ NOT VALID — {why_not(failed, anchor_kind(failed, result.anchors))}")
        lines.append(f"  The check '{failed.name}' failed: {failed.detail}")
        hint = key_hint(result, keys)
        if hint:
            lines.append(f"  {hint}")
    else:
        unchecked = result.unchecked
        if unchecked:
            skipped = ", ".join(_not_checked(c, result) for c in unchecked)
            lines.append(f"✓ VALID as far as checked — not checked: {skipped}.")
        else:
            lines.append("✓ VALID — every check holds.")
        what = "The document" if file_given else "The digest in this receipt"
        receipt = result.receipt
        subject = f", notarized by {receipt.subject!r}," if receipt is not None else ""
        entries = "entry" if result.tree_size == 1 else "entries"
        lines.append(
            f"  {what}{subject} was entry {result.index} of the log {result.origin}, in a tree of "
            f"{result.tree_size} {entries} signed by {result.log_key}."
        )
        when = result.check("signed time")
        if when is not None and when.ok:
            lines.append(f"  {when.detail[0].upper()}{when.detail[1:]}.")
    lines.append("")
    width = max(len(c.name) for c in result.checks)
    for c in result.checks:
        lines.append(f"  {MARKS[c.status]} {c.name:<{width}}  {c.detail}")
        meaning = meaning_of(c, anchor_kind(c, result.anchors))
        if meaning:
            lines.append(f"    {'':<{width}}  ({meaning})")
    return "\n".join(lines)


def write_report(ns: argparse.Namespace, result: ReceiptResult, notes: list[str], keys: list[str],
                 cas: list[x509.Certificate]) -> None:
    """`--report FILE.pdf`: the one-page evidence report; ConfigError (exit 2) when unwritable."""
    from services.cli.evidence import gather
    from services.cli.report import write_report as draw

    receipt = ns.receipt.read_bytes()
    evidence = gather(result, receipt_file=ns.receipt, receipt_bytes=receipt, document=ns.file, keys=keys,
                      tsa_cas=cas, notes=notes)  # fmt: skip
    try:
        draw(ns.report, evidence)
    except OSError as e:
        raise ConfigError(f"cannot write the report {ns.report}: {e.strerror or e}", setting="REPORT") from e
    print(f"  note: report written to {ns.report}", file=sys.stderr)


def verify(ns: argparse.Namespace) -> int:
    from services.cli.verify_scitt import is_cose, verify_statement

    if is_cose(ns.receipt):  # a SCITT statement or COSE receipt, not a JSON receipt
        return verify_statement(ns)
    result, notes, keys, cas = check(ns)
    if ns.report is not None:
        write_report(ns, result, notes, trusted_list(keys), cas)
    if ns.json:
        doc: dict[str, Any] = {**result.to_obj(), "notes": notes}
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(result, ns.file is not None, keys))
        for n in notes:
            print(f"  note: {n}", file=sys.stderr)
    return 0 if result.valid else 1
