"""The Agent Server's artifact route: ``GET /artifacts/<sha256>.<ext>`` serves stored frames and clips.

langgraph.json mounts :data:`app` (``http.app``), so a Studio, SDK or browser client can fetch the
frame an approval asks about, the clips the events name and the final video: each of them carries
this route's path (``frame_url``, ``clip_url``, ``final_url``, the chat messages), which a client
resolves against the server it talks to.

What it serves: only content-addressed artifacts, looked up by hash in the stores of this
server's runs (every store this process opened, and the default one under ``$COLLABVR_OUT_DIR``,
so a replica that did not run the episode still serves an S3-backed one), and verified against the
hash before they are sent. The name is a hash and an extension, matched whole: no path, no
traversal, nothing else on disk. With ``http.enable_custom_route_auth`` (set in langgraph.json) the
route sits behind the server's auth when one is configured; without auth, knowing an artifact's
256-bit hash is what it takes to read it.
"""

from __future__ import annotations

import asyncio
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collabvr.artifacts import MIMES, ROUTE, ArtifactStore, opened
from collabvr.context import Context
from collabvr.location import join
from collabvr.rundir import ARTIFACTS

_NAME = re.compile(r"([0-9a-f]{64})\.([a-z0-9]{2,5})")


def default_store() -> ArtifactStore:
    """The store of runs that keep the default ``out_dir`` ($COLLABVR_OUT_DIR on a deployment)."""
    return ArtifactStore(join(Context().out_dir, ARTIFACTS))


def find(sha: str, ext: str) -> bytes | None:
    """The verified bytes of an artifact in any store this server knows, or None."""
    for store in [*reversed(opened()), default_store()]:
        data = store.find(sha, ext)
        if data is not None:
            return data
    return None


async def artifact(request: Request) -> Response:
    match = _NAME.fullmatch(request.path_params["name"])
    if match is None or match.group(2) not in MIMES:
        return Response("not an artifact name: <sha256>.<png|mp4|json>", status_code=404, media_type="text/plain")
    sha, ext = match.groups()
    data = await asyncio.to_thread(find, sha, ext)
    if data is None:
        return Response("no such artifact", status_code=404, media_type="text/plain")
    return Response(data, media_type=MIMES[ext], headers={
        "Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{sha}"'})


app = Starlette(routes=[Route(ROUTE + "/{name}", artifact, methods=["GET"])])
