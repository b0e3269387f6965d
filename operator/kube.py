"""A small asynchronous Kubernetes API client for what kopf does not do for us.

kopf watches and patches the pools; the operator itself creates and patches Deployments and
annotates Pods. It uses JSON merge patches only (RFC 7386), never strategic merge, so the
same requests work on any API server and on test emulators.

Credentials come from the same login function kopf uses (`durable.operator.handlers`), so
both speak to the same cluster with the same identity.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

__all__ = ["KubeApiError", "KubeClient", "LoginFn"]

log = logging.getLogger(__name__)

LoginFn = Callable[[], Awaitable[kopf.ConnectionInfo]]

# Shows in API server audit logs (and lets tests tell our requests from their own).
USER_AGENT = "durable-operator"


class KubeApiError(Exception):
    """A Kubernetes API request failed with an HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    if not info.server.startswith("https"):
        return True
    context = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
    )
    certificate, key = info.certificate_path, info.private_key_path
    if info.certificate_data or info.private_key_data:
        # ssl loads client certificates from files only.
        files: list[str | None] = []
        for data in (info.certificate_data, info.private_key_data):
            if data is None:
                files.append(None)
                continue
            handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.close()
            files.append(handle.name)
        certificate = files[0] or certificate
        key = files[1] or key
    if certificate:
        context.load_cert_chain(str(certificate), str(key) if key else None)
    return context


class KubeClient:
    """JSON over HTTP to the API server: create, merge-patch, list. Re-logs in on 401."""

    def __init__(self, login: LoginFn, *, timeout: float = 30.0) -> None:
        self._login = login
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._lock = asyncio.Lock()

    async def _connect(self, *, fresh: bool = False) -> aiohttp.ClientSession:
        async with self._lock:
            if self._session is not None and not fresh:
                return self._session
            if self._session is not None:
                await self._session.close()
            info = await self._login()
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            auth = None
            if info.token:
                headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
            elif info.username and info.password:
                auth = aiohttp.BasicAuth(info.username, info.password)
            self._server = info.server.rstrip("/")
            self._session = aiohttp.ClientSession(
                headers=headers,
                auth=auth,
                connector=aiohttp.TCPConnector(ssl=_ssl_context(info)),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
            return self._session

    async def close(self) -> None:
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            session = await self._connect(fresh=attempt == 2)
            async with session.request(
                method, f"{self._server}{path}", json=body, params=params,
                headers={"Content-Type": content_type} if body is not None else None,
            ) as response:
                if response.status == 401 and attempt == 1:
                    continue
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = {"message": await response.text()}
                if response.status >= 400:
                    payload = payload if isinstance(payload, dict) else {}
                    raise KubeApiError(response.status, str(payload.get("reason", "")),
                                       str(payload.get("message", "")))
                return payload if isinstance(payload, dict) else {}
        raise KubeApiError(401, "Unauthorized", "login did not help")  # pragma: no cover

    # --- typed helpers -------------------------------------------------------------------

    @staticmethod
    def deployments_path(namespace: str, name: str | None = None) -> str:
        base = f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments"
        return f"{base}/{quote(name)}" if name else base

    @staticmethod
    def pods_path(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/pods"
        return f"{base}/{quote(name)}" if name else base

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=dict(body))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=dict(patch),
                                  content_type="application/merge-patch+json")

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def list(self, path: str, *, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects under `path` carrying all `labels` (also checked here, not only by the
        server's label selector)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        payload = await self.request("GET", path, params={"labelSelector": selector})
        items = payload.get("items") or []
        return [
            item for item in items
            if isinstance(item, dict)
            and all((item.get("metadata", {}).get("labels") or {}).get(k) == v
                    for k, v in labels.items())
        ]
