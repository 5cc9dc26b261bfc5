"""The web verifier's browser cases in Chromium (tests/services/verify/web_verifier.mjs, run once
by the `web_run` fixture in conftest.py): valid, changed file, tampered proof and index, wrong key,
other log, drop, progress, keyboard only, phone, from disk, anchors, server gone, and no request
carrying the file's bytes."""

from __future__ import annotations

from tests.services.verify.conftest import WebRun


def test_web_verifier_in_chromium(web_run: WebRun) -> None:
    run = web_run.driver
    print(run.stdout, run.stderr, sep="\n")
    assert run.returncode == 0, f"the browser cases failed:\n{run.stdout}\n{run.stderr}"
    assert web_run.server_exit == 0, "the driver stopped the server with SIGTERM"
