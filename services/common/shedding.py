"""Load shedding: a write the service is sure to refuse for being busy is refused first of all.

Under overload most requests are refused (503 problem+json with Retry-After). Each refusal used
to cost what the service spends on any request (a trace span, metrics, the API key, the body
read and parsed): a third of an acknowledgement of 20 digests, so that at three times the
capacity the refusals took most of the CPU and acknowledgements fell to a fraction of it
(loadtest/reliability/scenarios/overload.py). This middleware goes in front of all the others
and asks the sequencer (in process) whether it would take one more entry; when it would not, the
request is answered at once, its body unread, and counted in ``notar_http_shed_total``. An
unauthenticated request is refused too: it would be refused after its key anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from aiohttp import web

from services.common.problems import Handler, to_response
from services.common.resources import METRICS
from storage.errors import NotarError

Refusal = Callable[[web.Application], NotarError | None]
SHED = web.AppKey("shed", list[int])  # one counter per app: [requests shed]


def add_shedding(
    app: web.Application,
    routes: Collection[tuple[str, str]],
    refusal: Refusal,
    answer: Callable[[BaseException], web.Response] = to_response,
) -> None:
    """Shed requests to ``routes`` ((method, route template) pairs) while ``refusal(app)`` says
    why, answered by ``answer`` (problem+json unless told); call during setup, before the app
    starts."""
    if SHED not in app:
        app[SHED] = [0]
        app[METRICS].append(
            lambda: ["# TYPE notar_http_shed_total counter", f"notar_http_shed_total {app[SHED][0]}"]
        )
    watched = frozenset(routes)

    @web.middleware
    async def shed(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and (request.method, resource.canonical) in watched:
            refused = refusal(request.app)
            if refused is not None:
                request.app[SHED][0] += 1
                return answer(refused)
        return await handler(request)

    app.middlewares.insert(0, shed)
