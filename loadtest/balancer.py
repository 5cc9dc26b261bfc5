"""Debian's haproxy as the load balancer in front of a loopback cluster's ingest and verify pods.

It routes as the Kubernetes Ingress would: the write routes (`/v1/digests`, `/v1/documents…`) to
the ingest pods, everything else public to the verify pods, and never the anchors' `/internal/`
routes. Each pod is health-checked on `/readyz` every half second; a pod that refuses a connection
is retried on another (`retry-on conn-failure`, safe for a POST: nothing was sent). When no pod of
a route is up the answer is notar's own shape for that case: 503 problem+json with Retry-After.
haproxy logs each request (`backend/server`, status) to its log file: ``served_by`` counts them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.reliability.cluster import wait_ready

INGEST_PATHS = ("/v1/digests", "/v1/documents")
READY_S = 30.0
_NO_SERVER = (
    '{"type":"urn:notar:problem:pushback","title":"Busy, retry later","status":503,'
    '"detail":"no server of this route is ready; retry after Retry-After seconds"}'
)
_NOT_FOUND = (
    '{"type":"urn:notar:problem:not-found","title":"Not found","status":404,'
    '"detail":"internal routes are not served here"}'
)
_LOGGED = re.compile(r" api (ingest|verify)/(\S+) \S+ (\d{3}) ")


def config(port: int, ingest: Sequence[int], verify: Sequence[int]) -> str:
    """haproxy.cfg for a frontend on 127.0.0.1:``port`` over pods on those loopback ports."""

    def servers(role: str, ports: Sequence[int]) -> str:
        return "\n".join(f"    server {role}{n} 127.0.0.1:{p}" for n, p in enumerate(ports))

    return f"""\
global
    log stdout format raw local0
    maxconn 4000
    nbthread 1

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout http-request 30s
    timeout queue 5s
    # long uploads and 10,000-digest requests under load
    timeout client 130s
    timeout server 130s
    retries 2
    retry-on conn-failure
    option redispatch
    option httpchk GET /readyz
    default-server check inter 500ms fall 2 rise 1
    http-error status 503 content-type application/problem+json hdr retry-after 1 string '{_NO_SERVER}'

frontend api
    bind 127.0.0.1:{port}
    http-request return status 404 content-type application/problem+json \
        string '{_NOT_FOUND}' if {{ path_beg /internal/ }}
    use_backend ingest if {{ path_beg {' '.join(INGEST_PATHS)} }}
    default_backend verify

backend ingest
    balance leastconn
{servers("ingest", ingest)}

backend verify
    balance roundrobin
{servers("verify", verify)}
"""


def find_haproxy() -> str | None:
    """The haproxy binary (Debian's, /usr/sbin), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Balancer:
    """One haproxy process on 127.0.0.1:``port``, its configuration and log in ``workdir``."""

    port: int
    workdir: Path
    binary: str
    detached: bool = False  # in a session of its own, to outlive the command that started it
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "haproxy.log"

    def start(self, ingest: Sequence[int], verify: Sequence[int]) -> None:
        """Write the configuration, check it (`haproxy -c`), run haproxy in the foreground (`-db`)."""
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(config(self.port, ingest, verify))
        checked = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(cfg)], capture_output=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy rejects {cfg}: {checked.stderr.decode(errors='replace')}")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.detached,
            )

    def wait_ready(self, timeout: float = READY_S) -> None:
        """Until a request through it reaches a verify pod (`/readyz` answers 200)."""
        wait_ready(self.url, self.process, f"haproxy on {self.url}", self.tail, timeout)

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- haproxy {self.url} ---\n{text[-chars:]}"


def served_by(log_text: str) -> Counter[tuple[str, str, int]]:
    """(backend, server, status) → requests, from haproxy's log; server `<NOSRV>` when none was."""
    return Counter((m[1], m[2], int(m[3])) for m in _LOGGED.finditer(log_text))
