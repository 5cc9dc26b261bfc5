"""The worked example of docs/example.md: a notar.receipt.v2 receipt built from first principles.

It needs Python's standard library and the `cryptography` package (for Ed25519) and nothing of
notar, so it shows that the format can be produced, and therefore checked, from the documents
alone. Every input is fixed (keys from fixed seeds, a fixed salt and time) and Ed25519 signatures
are deterministic, so the output never changes; tests/docs checks that it is what the document
shows.

    python3 docs/examples/receipt_v2.py
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ORIGIN = "example.org/log"
SUBJECT = "acme"
DOCUMENT = b"Lease agreement between Acme and Globex, signed 2026-01-05.\n"
SALT = bytes.fromhex("000102030405060708090a0b0c0d0e0f")  # notar draws 16 random bytes each time
SIGNED_AT = 1767607200  # 2026-01-05T10:00:00Z: the time the clock cosignature states
LOG_SEED = hashlib.sha256(b"notar docs example: log key").digest()
CLOCK_SEED = hashlib.sha256(b"notar docs example: clock key").digest()
SIG_ED25519, SIG_COSIGNATURE_V1 = 0x01, 0x04
MULTIHASH_SHA256 = bytes([0x12, 0x20])  # blake3 would be 0x1e 0x20


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def entry_v2(multihash: bytes, salt: bytes, subject: str) -> bytes:
    """entry = 0x02 || SHA-256("notar.entry.v2" || 0x00 || salt || multihash || u8(len) || subject)."""
    name = subject.encode("utf-8")
    return b"\x02" + sha256(b"notar.entry.v2\x00" + salt + multihash + bytes([len(name)]) + name)


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """The signed-note key ID: the first 4 bytes of SHA-256(name || 0x0A || type || public key)."""
    return sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public)[:4]


def verifier_key(name: str, sig_type: int, public: bytes) -> str:
    return f"{name}+{key_id(name, sig_type, public).hex()}+{b64(bytes([sig_type]) + public)}"


def main() -> None:
    # 1. The document's digest and its multihash.
    digest = sha256(DOCUMENT)
    multihash = MULTIHASH_SHA256 + digest
    print(f"digest:      sha256:{digest.hex()}")
    print(f"multihash:   {multihash.hex()}")

    # 2. The v2 entry: a hiding commitment to salt, digest and subject.
    entry = entry_v2(multihash, SALT, SUBJECT)
    print(f"salt:        {SALT.hex()}")
    print(f"subject:     {SUBJECT}")
    print(f"entry:       {entry.hex()}")

    # 3. A log of three entries, ours at index 1 (the others: other documents, salts, tenants).
    other0 = entry_v2(MULTIHASH_SHA256 + sha256(b"Invoice 2026-001\n"), bytes(16), "globex")
    other2 = entry_v2(MULTIHASH_SHA256 + sha256(b"Invoice 2026-002\n"), bytes([0xFF] * 16), "acme")
    leaves = [leaf_hash(e) for e in (other0, entry, other2)]
    root = node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
    for i, leaf in enumerate(leaves):
        print(f"leaf {i}:      {leaf.hex()}")
    print(f"root:        {root.hex()}")
    inclusion = [leaves[0], leaves[2]]  # RFC 9162 path of leaf 1 in a tree of 3
    assert node_hash(node_hash(inclusion[0], leaves[1]), inclusion[1]) == root

    # 4. The checkpoint, signed by the log key and cosigned, with a time, by the clock key.
    body = f"{ORIGIN}\n3\n{b64(root)}\n"
    log_key = Ed25519PrivateKey.from_private_bytes(LOG_SEED)
    clock_key = Ed25519PrivateKey.from_private_bytes(CLOCK_SEED)
    log_public = log_key.public_key().public_bytes_raw()
    clock_public = clock_key.public_key().public_bytes_raw()
    clock_name = ORIGIN + "/clock"
    log_sig = key_id(ORIGIN, SIG_ED25519, log_public) + log_key.sign(body.encode())
    cosigned = f"cosignature/v1\ntime {SIGNED_AT}\n{body}".encode()
    clock_sig = (
        key_id(clock_name, SIG_COSIGNATURE_V1, clock_public)
        + SIGNED_AT.to_bytes(8, "big")
        + clock_key.sign(cosigned)
    )
    note = f"{body}\n— {ORIGIN} {b64(log_sig)}\n— {clock_name} {b64(clock_sig)}\n"
    print(f"log key:     {verifier_key(ORIGIN, SIG_ED25519, log_public)}")
    print(f"clock key:   {verifier_key(clock_name, SIG_COSIGNATURE_V1, clock_public)}")
    print("checkpoint:")
    print(note, end="")

    # 5. The receipt, in canonical form (members in this order, no whitespace).
    receipt = {
        "format": "notar.receipt.v2",
        "digest": f"sha256:{digest.hex()}",
        "salt": SALT.hex(),
        "subject": SUBJECT,
        "entry": entry.hex(),
        "log": {"origin": ORIGIN, "index": 1, "tree_size": 3, "inclusion": [h.hex() for h in inclusion]},
        "checkpoint": note,
        "anchors": [],
    }
    print("receipt:")
    print(json.dumps(receipt, ensure_ascii=False, separators=(",", ":")))

    # 6. The same proof exported as C2SP tlog-proof@v1: extra = salt || u8(len) || subject || multihash.
    subject = SUBJECT.encode("utf-8")
    extra = SALT + bytes([len(subject)]) + subject + multihash
    lines = ["c2sp.org/tlog-proof@v1", f"extra {b64(extra)}", "index 1", *map(b64, inclusion)]
    print("tlog-proof:")
    print("\n".join(lines) + "\n\n" + note, end="")


if __name__ == "__main__":
    main()
