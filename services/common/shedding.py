"""Load shedding: a write the service is sure to refuse for being busy is refused first of all.

Under overload most requests are refused (503 problem+json with Retry-After). Each refusal used
to cost what the service spends on any request (a trace span, metrics, the API key, the body
read and parsed): a third of an acknowledgement of 20 digests, so that at three times the
capacity the refusals took most of the CPU and acknowledgements fell to a fraction of it
(loadtest/reliability/scenarios/overload.py). This middleware goes in front of all the others
and asks the sequencer (in process) whether it would take one more entry; when it would not, the
request is answered at once, its body unread, and counted in ``notar_http_shed_total`` (an
OpenTelemetry counter of the app's Telemetry). An unauthenticated request is refused too: it
would be refused after its key anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from aiohttp import web
from opentelemetry.metrics import Counter

from services.common.problems import Handler, to_response
from services.common.telemetry import TELEMETRY
from storage.errors import NotarError

Refusal = Callable[[web.Application], NotarError | None]
SHED = web.AppKey("shed", Counter)  # one counter per app, made at start-up on its Telemetry


async def _shed_counter(app: web.Application) -> None:
    """On start-up (after the cleanup contexts: the app's Telemetry is there), the counter, at 0."""
    app[SHED] = app[TELEMETRY].meter.create_counter(
        "notar_http_shed", unit="1", description="requests refused unread because the service is busy"
    )
    app[SHED].add(0)


def add_shedding(app: web.Application, routes: Collection[tuple[str, str]], refusal: Refusal) -> None:
    """Shed requests to ``routes`` ((method, route template) pairs) while ``refusal(app)`` says
    why; call during setup, before the app starts."""
    if _shed_counter not in app.on_startup:
        app.on_startup.append(_shed_counter)
    watched = frozenset(routes)

    @web.middleware
    async def shed(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and (request.method, resource.canonical) in watched:
            refused = refusal(request.app)
            if refused is not None:
                request.app[SHED].add(1)
                return to_response(refused)
        return await handler(request)

    app.middlewares.insert(0, shed)
