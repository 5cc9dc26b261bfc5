"""The command line's surface: every subcommand's arguments, and the module that runs it.

Only this module (argparse, the settings, no server code) is loaded to parse a command line;
the module that runs the chosen subcommand is imported afterwards (`ns.run`, "module:function"
under services.cli), so `notar verify` loads none of the server and `notar --help` lists all.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.components import NotarConfig, load
from services.common.config import SETTINGS
from services.sdk import MAX_DIGESTS

ROLES = ("all", "anchor", "ingest", "verify")
TENANT_ACTIONS = {
    "add": "create a tenant; prints its API key once, alone on the last line",
    "key": "another API key for the tenant (rotation)",
    "keys": "list the tenant's API keys by SHA-256",
    "revoke": "revoke one of the tenant's API keys",
}
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


CLIENT = ("URL", "API_KEY")
"""What the client commands read; every other setting is the server's (`notar serve --help`),
taken by the commands run where the server runs (keygen, tenant, backup, anchor, receipt export)."""
SERVER = tuple(name for name in SETTINGS if name not in CLIENT)
TRUSTING = (*CLIENT, "DATA_DIR")
"""notarize: the client's settings and DATA_DIR, where its trust file (the pinned keys) is."""
VERIFY = ("URL", "EVM_RPC", "EVM_CONTRACT", "EVM_CONFIRMATIONS")  # TSA_CA_FILE: --tsa-ca


def add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """A flag for each of the settings `names` (SPEC §8: `--data-dir` for DATA_DIR …), winning
    over the environment and notar.toml: only those a command reads, so its --help lists its
    own. A default is shown once: in the setting's help when it says it, else after it."""
    group = parser.add_argument_group("settings (also NOTAR_<NAME> or notar.toml)")
    group.add_argument("--config", type=Path, help="notar.toml to read (default ./notar.toml if present)")
    for name in names:
        setting = SETTINGS[name]
        shown = "" if not setting.default or "default" in setting.help else f" (default {setting.default})"
        group.add_argument(
            f"--{name.lower().replace('_', '-')}",
            dest=f"setting_{name}",
            metavar=name,
            help=setting.help + shown,
        )


def setting_args(ns: argparse.Namespace) -> list[str]:
    """The setting flags (and --config) `ns` was given, as arguments to pass on to a child
    process (a worker of `notar serve --workers`)."""
    out = [] if getattr(ns, "config", None) is None else ["--config", str(ns.config)]
    for name in SETTINGS:
        value = getattr(ns, f"setting_{name}", None)
        if value is not None:
            out += [f"--{name.lower().replace('_', '-')}", value]
    return out


def config_from(ns: argparse.Namespace, env: Mapping[str, str]) -> NotarConfig:
    """Every component's config from the setting flags of `ns`, `env` and the config file."""
    flags = {name: getattr(ns, f"setting_{name}", None) for name in SETTINGS}
    return load(flags=flags, env=env, config_file=ns.config)


def serve(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="run the notar server (all roles on the embedded default)")
    p.add_argument(
        "--role", choices=ROLES, default="all", help="run one service, as in Kubernetes (default all)"
    )
    # a worker of `notar serve --workers N`, started by its parent (services/cli/workers.py)
    p.add_argument("--worker", metavar="INDEX:FD:PARENT", help=argparse.SUPPRESS)
    # the parent's private directory: the anchor's socket (role all), the workers' metrics sockets
    p.add_argument("--run-dir", metavar="DIR", help=argparse.SUPPRESS)
    add_setting_flags(p, SERVER)
    p.set_defaults(run="serve:serve")


def keygen(sub: Subparsers) -> None:
    p = sub.add_parser(
        "keygen",
        help="create the log and clock signing keys and the index key (if missing); print the verifier keys",
    )
    add_setting_flags(p, SERVER)
    p.set_defaults(run="keygen:keygen")


def tenant(sub: Subparsers) -> None:
    p = sub.add_parser(
        "tenant",
        help="create a tenant (add), another API key for it (key), list its keys (keys), revoke one "
        "(revoke); its SCITT issuers (issuer add|list|revoke)",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    name_help = "tenant name: 1-64 of A-Z a-z 0-9 . _ -"
    for action, what in TENANT_ACTIONS.items():
        a = actions.add_parser(action, help=what)
        a.add_argument("name", help=name_help)
        if action == "revoke":
            a.add_argument("key", help="the API key, or its SHA-256 as `keys` lists it")
        add_setting_flags(a, SERVER)
        a.set_defaults(run="tenant:tenant")
    issuer = actions.add_parser("issuer", help="SCITT issuers registered to a tenant: add, list, revoke")
    kinds = issuer.add_subparsers(dest="issuer_action", metavar="ACTION", required=True)
    add = kinds.add_parser("add", help="register an issuer key (ES256, ES384 or EdDSA); prints its kid")
    add.add_argument("name", metavar="TENANT", help=name_help)
    add.add_argument("--iss", required=True, help="the issuer, as statements name it in their CWT claim iss")
    add.add_argument(
        "--key", dest="issuer_key", required=True, type=Path, metavar="PEM", help="its public key (PEM file)"
    )
    add.add_argument(
        "--x5-anchor", type=Path, metavar="PEM", help="an X.509 trust anchor for statements with x5chain"
    )
    listed = kinds.add_parser("list", help="list the tenant's issuer keys")
    listed.add_argument("name", metavar="TENANT", help=name_help)
    revoke = kinds.add_parser("revoke", help="revoke an issuer key, named by its kid")
    revoke.add_argument("name", metavar="TENANT", help=name_help)
    revoke.add_argument("kid", help="the key's kid (64 hex digits, as `list` shows)")
    for a in (add, listed, revoke):
        add_setting_flags(a, SERVER)
        a.set_defaults(run="tenant:issuer")


def keys(sub: Subparsers) -> None:
    p = sub.add_parser("keys", help="manage the log's signing keys (rotate them)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser(
        "rotate",
        help="new log and clock keys from the size the stopped log stands at; the old log key signs the "
        "statement, stored beside the log; prints the new verifier keys",
    )
    add_setting_flags(r, SERVER)
    r.set_defaults(run="keys:rotate")


def anchor(sub: Subparsers) -> None:
    p = sub.add_parser("anchor", help="manage the EVM anchor contract")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    d = actions.add_parser("deploy", help="deploy NotarAnchor; prints its address alone on the last line")
    add_setting_flags(d, SERVER)
    d.set_defaults(run="anchor:anchor_deploy")


def add_trust_flags(parser: argparse.ArgumentParser) -> None:
    """--key / --policy of the client commands: trust exactly these, not DATA_DIR's trust file."""
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="trust this verifier key (the log's, its clock's) instead of the keys pinned in "
        "DATA_DIR/trust.json; repeat for several",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="trust the log and clock keys of this tlog-policy (/v1/keys' policy)",
    )


def notarize(sub: Subparsers) -> None:
    p = sub.add_parser("notarize", help="notarize files or directories, writing FILE.receipt.json")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--upload", action="store_true", help="store the documents on the server too")
    p.add_argument("--out", type=Path, help="write receipts under this directory instead of beside the files")
    p.add_argument("--batch", type=int, default=MAX_DIGESTS, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_trust_flags(p)
    add_setting_flags(p, TRUSTING)
    p.set_defaults(run="notarize:notarize")


def verify(sub: Subparsers) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a receipt offline (and its document, if given), or a SCITT transparent statement",
    )
    p.add_argument(
        "receipt", type=Path, metavar="RECEIPT", help="a receipt, or a SCITT statement or COSE receipt"
    )
    p.add_argument(
        "file",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="the document the receipt is for (for a COSE receipt: its signed statement)",
    )
    p.add_argument(
        "--issuer-key",
        type=Path,
        metavar="PEM",
        help="SCITT: also check the statement's signature under this key",
    )
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a trusted verifier key (log key, clock key, witness); repeat for several",
    )
    p.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="trust what this C2SP tlog-policy (/v1/keys' policy) or saved /v1/keys document says: its "
        "log keys (in their periods, with the document's rotation statements) and its witness quorum",
    )
    p.add_argument("--tsa-ca", metavar="PEM", help="trust anchor for RFC 3161 anchors (default TSA_CA_FILE)")
    p.add_argument("--online", action="store_true", help="also check EVM anchors on the chain (EVM_RPC), "
                   "and that the log URL publishes now still contains the receipt's tree")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--report", type=Path, metavar="PDF", help="also write a one-page PDF report for a court")
    add_setting_flags(p, VERIFY)
    p.set_defaults(run="verify:verify")


def receipt(sub: Subparsers) -> None:
    p = sub.add_parser("receipt", help="upgrade a receipt, or export it for other tools")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser(
        "upgrade",
        help="fetch the anchored version of a receipt (no API key needed); written beside it as "
        "NAME.receipt.<tree size>.json, RECEIPT is kept",
    )
    up.add_argument("receipt", type=Path, metavar="RECEIPT")
    up.add_argument("--out", type=Path, help="write the upgrade here instead (never over an existing file)")
    add_trust_flags(up)
    add_setting_flags(up, ("URL", "DATA_DIR"))
    up.set_defaults(run="receipt:upgrade")
    ex = actions.add_parser("export", help="export as C2SP tlog-proof or RFC 9942 COSE receipt")
    ex.add_argument("receipt", type=Path, metavar="RECEIPT")
    ex.add_argument("--format", required=True, choices=("tlog-proof", "cose"))
    ex.add_argument("--out", type=Path, help="write here instead of standard output")
    add_setting_flags(ex, SERVER)
    ex.set_defaults(run="receipt:export")


def witness(sub: Subparsers) -> None:
    p = sub.add_parser("witness", help="run a C2SP tlog-witness that cosigns logs' checkpoints")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    k = actions.add_parser("keygen", help="create the witness key; prints its verifier key on the last line")
    k.add_argument("--data-dir", required=True, type=Path, metavar="DIR", help="the witness's directory")
    k.add_argument("--name", help="the key's name, a schema-less URL (default: <hostname>/witness)")
    k.add_argument("--alg", choices=("ed25519", "ml-dsa-44"), default="ed25519", help="cosignature type")
    k.set_defaults(run="witness:keygen")
    s = actions.add_parser("serve", help="serve POST /add-checkpoint and GET /<origin hash>/checkpoint")
    s.add_argument("--data-dir", required=True, type=Path, metavar="DIR", help="its keys and state")
    s.add_argument("--listen", default="127.0.0.1:8090", metavar="ADDR", help="HOST:PORT (127.0.0.1:8090)")
    s.add_argument("--logs", required=True, type=Path, metavar="FILE", help="trusted log keys, one per line")
    s.add_argument("--log-format", choices=("text", "json"), default="text", help="format of its own logs")
    s.set_defaults(run="witness:serve")


def trust(sub: Subparsers) -> None:
    p = sub.add_parser(
        "trust", help="the keys the client commands pinned (DATA_DIR/trust.json): show, add or remove them"
    )
    p.add_argument("action", choices=("show", "add", "remove"))
    p.add_argument("items", nargs="*", metavar="VKEY|ORIGIN", help="add: verifier keys; remove: origins")
    p.add_argument(
        "--policy", type=Path, metavar="FILE", help="add: the log and clock keys of this tlog-policy"
    )
    add_setting_flags(p, ("DATA_DIR",))
    p.set_defaults(run="trust:trust")


def backup(sub: Subparsers) -> None:
    p = sub.add_parser("backup", help="list the backups of the anchor's index, or restore one")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the complete backups in the object store, oldest first")
    add_setting_flags(ls, SERVER)
    ls.set_defaults(run="backup:list_command")
    r = actions.add_parser(
        "restore",
        help="restore the newest backup (or --from ID) into DATA_DIR/index, which must be empty; "
        "the anchor must be stopped",
    )
    r.add_argument("--from", dest="backup", metavar="ID", help="the backup to restore (`notar backup list`)")
    add_setting_flags(r, SERVER)
    r.set_defaults(run="backup:restore_command")


def shard(sub: Subparsers) -> None:
    p = sub.add_parser("shard", help="list the deployment's shards, or freeze one (docs/shards.md)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the shard table: each shard's id, state, origin and owner")
    add_setting_flags(ls, SERVER)
    ls.set_defaults(run="shard:list_command")
    f = actions.add_parser(
        "freeze",
        help="stop shard I for good: its anchor publishes and anchors a final checkpoint, then moves "
        "its tenant index to the object store; another shard must be active",
    )
    f.add_argument("shard", type=int, metavar="I", help="the shard's id (`notar shard list`)")
    add_setting_flags(f, SERVER)
    f.set_defaults(run="shard:freeze_command")


SUBCOMMANDS = (serve, keygen, keys, tenant, anchor, notarize, verify, receipt, trust, backup, shard, witness)
"""In the order `notar --help` lists them."""
