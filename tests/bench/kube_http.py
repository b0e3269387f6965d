"""The operator benchmark's side of the Kubernetes API: plain HTTP to the emulator process.

Creates pools with POST and follows pools and Deployments with one watch stream each (the
emulator pushes every change; nothing is polled, so observing costs the emulator one event per
change, not a LIST of every object per check). Times are taken when an event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tests.k8s.pools import NS, pool_body

__all__ = ["DEPLOYMENTS", "POOLS", "KubeHttp", "Watch", "condition", "kube_http"]

POOLS = f"/apis/durable.dev/v1alpha1/namespaces/{NS}/durableworkerpools"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


class KubeHttp:
    """POSTs pools to the emulator at `url`."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def create_pool(self, name: str, **spec: Any) -> None:
        async with self.session.post(self.url + POOLS, json=pool_body(name, **spec)) as response:
            if response.status != 200:
                raise RuntimeError(f"creating pool {name}: HTTP {response.status} {await response.text()}")


@contextlib.asynccontextmanager
async def kube_http(url: str) -> AsyncIterator[KubeHttp]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield KubeHttp(session, url)


class Watch:
    """The latest version of every object under one collection path, from a watch stream.

    `objects` maps name -> object; `changed_at` maps name -> the perf_counter time its latest
    event arrived. `check()` raises if the stream failed or ended."""

    def __init__(self, api: KubeHttp, path: str) -> None:
        self.api = api
        self.path = path
        self.objects: dict[str, dict[str, Any]] = {}
        self.changed_at: dict[str, float] = {}
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def apply(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        name = obj["metadata"]["name"]
        if event["type"] == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self.changed_at[name] = time.perf_counter()

    async def _stream(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.api.session.get(self.api.url + self.path, params={"watch": "true"},
                                        timeout=timeout) as response:
            response.raise_for_status()
            self.started.set()
            async for line in response.content:
                if line.strip():
                    self.apply(json.loads(line))
        raise RuntimeError(f"the watch on {self.path} ended")

    def check(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()  # raises what stopped it

    @contextlib.asynccontextmanager
    async def running(self, timeout: float = 10.0) -> AsyncIterator[Watch]:
        """Stream while the block runs; yields once the server answered the watch."""
        self._task = asyncio.create_task(self._stream(), name=f"bench-watch {self.path}")
        try:
            deadline = time.monotonic() + timeout
            while not self.started.is_set():
                self.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the watch on {self.path} did not start in {timeout:.0f} s")
                await asyncio.sleep(0.01)
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def condition(pool: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((pool or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}
