"""The `rfc3161` backend: a time-stamp token over the checkpoint body (or an aggregate's text,
``merkle.aggregate.aggregate_body``) from an RFC 3161 TSA.

The request (HTTP POST, ``application/timestamp-query``) carries the SHA-256 imprint of the body,
a fresh 63-bit nonce and certReq, so the token includes the TSA certificate and verifies offline.
A token is kept only when the answer echoes our nonce and imprint and the token verifies against
``TSA_CA_FILE`` exactly as a court's verifier would (``merkle.anchors.rfc3161.verify_token``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509

from merkle.anchors.rfc3161 import build_request, load_certificates, token_from_response, verify_token
from services.anchor.chains import Anchorable, Anchored, AnchorError
from storage.errors import ConfigError

MAX_RESPONSE = 1 << 20
REPLY_TYPES = ("application/timestamp-reply", "application/timestamp-response")


@dataclass(frozen=True)
class Rfc3161Config:
    url: str
    ca_file: Path
    timeout_s: float = 15.0


def load_trusted_cas(path: Path, setting: str = "TSA_CA_FILE") -> list[x509.Certificate]:
    """The CA certificates of a PEM file; ConfigError naming the setting when unreadable."""
    try:
        return load_certificates(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"{setting}: cannot read {path}: {e.strerror}", setting=setting) from e
    except ValueError as e:
        raise ConfigError(f"{setting}: {path} holds no PEM certificate: {e}", setting=setting) from e


class TsaClient:
    kind = "rfc3161"

    def __init__(
        self,
        *,
        url: str,
        trusted_cas: list[x509.Certificate],
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self._url, self._cas, self._timeout = url, trusted_cas, aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None

    @classmethod
    def from_config(cls, config: Rfc3161Config) -> TsaClient:
        return cls(url=config.url, trusted_cas=load_trusted_cas(config.ca_file), timeout_s=config.timeout_s)

    async def _post(self, request: bytes) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/timestamp-query", "Accept": REPLY_TYPES[0]}
        try:
            async with self._session.post(
                self._url, data=request, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    raise AnchorError(f"the TSA at {self._url} answered HTTP {resp.status}")
                if resp.content_type not in REPLY_TYPES:
                    raise AnchorError(
                        f"the TSA at {self._url} answered {resp.content_type}, not a time-stamp reply"
                    )
                body = await resp.content.read(MAX_RESPONSE + 1)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise AnchorError(f"the TSA at {self._url} is unreachable: {e!r}") from e
        if len(body) > MAX_RESPONSE:
            raise AnchorError(f"the TSA at {self._url} answered more than {MAX_RESPONSE} bytes")
        return body

    async def anchor(self, target: Anchorable) -> Anchored:
        nonce, stamped = secrets.randbits(63), target.stamped
        answer = await self._post(build_request(stamped, nonce))
        try:
            token = token_from_response(answer, nonce=nonce, body=stamped)
        except ValueError as e:
            raise AnchorError(f"the TSA at {self._url} gave no usable token: {e}") from e
        try:
            verify_token(token, body=stamped, trusted_cas=self._cas)
        except ValueError as e:
            raise AnchorError(
                f"the token of the TSA at {self._url} does not verify against TSA_CA_FILE: {e}"
            ) from e
        record = {"type": self.kind, "tsa": self._url, "token": base64.b64encode(token).decode("ascii")}
        return Anchored(target, record)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
