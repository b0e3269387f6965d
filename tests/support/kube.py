"""A Kubernetes API emulator for operator tests: kmock's, plus the API server behaviour the
operator and kopf depend on.

kmock's `KubernetesEmulator` stores objects, merges patches and streams watch events. This
subclass adds what a real API server does and kmock does not:

- `metadata.uid`, `resourceVersion` (one counter for all objects, as etcd's revision),
  `generation` (bumped when anything outside metadata and status changes),
  `creationTimestamp`, `generateName`, and `apiVersion`/`kind` from the declared resources;
- lists with `kind: <Kind>List`, the current `resourceVersion`, and equality label selectors;
- the `status` subresource: patches to `.../status` change only `status`, patches to the
  object leave `status` alone (for resources declared with `subresources={"status"}`);
- JSON patches (`application/json-patch+json`) whose `test` op fails answer 422, as kopf's
  optimistic-concurrency patches expect;
- a garbage collector: when an object is finally deleted, objects whose
  `metadata.ownerReferences` name its uid are deleted too (background cascading deletion).
  Deployments, ReplicaSets and kubelets are not emulated: nothing creates pods.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import jsonpatch
import kmock

__all__ = ["Emulator", "declare_resources"]

_VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}

Key = tuple[kmock.resource, str | None, str]  # (resource, namespace, name), as kmock keys objects


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, null deletes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with uids, resource versions, generations, subresources and a GC."""

    _revision: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _created_keys: dict[int, Key] = attrs.field(factory=dict, init=False)

    def _next_version(self) -> str:
        return str(next(self._revision))

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo | None:
        for declared in self.resources:
            if declared == resource:
                return self.resources[declared]
        return None

    def _has_status_subresource(self, resource: kmock.resource) -> bool:
        info = self._info(resource)
        return info is not None and "status" in info.subresources

    async def _handle(self, request: kmock.Request) -> Any:
        to_delete: list[Key] = []
        if request.resource is not None:
            async with self._lock:
                if request.action == kmock.action.CREATE:
                    self._create(request)
                    key = self._created_keys[request.id]
                    await self._publish(key, "ADDED")
                elif request.action == kmock.action.DELETE and request.name is not None:
                    key = (request.resource, request.namespace, request.name)
                    if key not in self._objects or self._objects[key].deleted:
                        raise kmock.KubernetesObjectNotFoundError()
                    meta = self._objects[key].get("metadata", {})
                    if meta.get("deletionTimestamp"):
                        pass
                    elif meta.get("finalizers"):
                        self._mark_deleting(key)
                        await self._publish(key, "MODIFIED")
                    else:
                        to_delete.append(key)
                elif request.action == kmock.action.UPDATE and request.name is not None:
                    key = (request.resource, request.namespace, request.name)
                    if key not in self._objects or self._objects[key].deleted:
                        raise kmock.KubernetesObjectNotFoundError()
                    self._write(key, self._patched(key, request))
                    await self._publish(key, "MODIFIED")
                    meta = self._objects[key].get("metadata", {})
                    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                        to_delete.append(key)
        try:
            return await kmock.KubernetesScaffold._handle(self, request)
        finally:
            if to_delete:
                async with self._lock:
                    for key in to_delete:
                        await self._delete_cascading(key)

    # --- writes ---------------------------------------------------------------------------

    def _create(self, request: kmock.Request) -> None:
        assert request.resource is not None
        obj: dict[str, Any] = (
            copy.deepcopy(dict(request.data)) if isinstance(request.data, Mapping) else {})
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)}"
        namespace = request.namespace or meta.get("namespace")
        if namespace is not None:
            meta["namespace"] = namespace
        info = self._info(request.resource)
        if info is not None and info.kind and "kind" not in obj:
            obj["kind"] = info.kind
        if "apiVersion" not in obj:
            group, version = request.resource.group, request.resource.version
            obj["apiVersion"] = f"{group}/{version}" if group else str(version)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_version()
        meta["generation"] = 1
        meta["creationTimestamp"] = _now()
        key = (request.resource, namespace, name)
        if key in self._objects and not self._objects[key].deleted:
            raise kmock.KubernetesError(status=409, reason="AlreadyExists",
                                     message=f"{name} already exists")
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        self._created_keys[request.id] = key

    def _merge(self, key: Key, patch: Mapping[str, Any]) -> dict[str, Any]:
        old = copy.deepcopy(self._objects[key].raw)
        return dict(merge_patch(old, patch))

    def _patched(self, key: Key, request: kmock.Request) -> dict[str, Any]:
        old = copy.deepcopy(self._objects[key].raw)
        data = request.data
        if isinstance(data, list):
            try:
                new = jsonpatch.apply_patch(old, data, in_place=False)
            except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchTestFailed) as exc:
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message=str(exc)) from None
        elif isinstance(data, Mapping):
            new = dict(merge_patch(old, data))
        else:
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="no patch body")
        if self._has_status_subresource(key[0]):
            if request.subresource == "status":
                kept = {k: v for k, v in old.items() if k != "status"}
                new = {**kept, **({"status": new["status"]} if "status" in new else {})}
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in old:
                    new["status"] = old["status"]
        meta = new.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "name", "namespace"):
            if fixed in old.get("metadata", {}):
                meta[fixed] = old["metadata"][fixed]
        generation = old.get("metadata", {}).get("generation", 1)
        meta["generation"] = generation + 1 if _content(new) != _content(old) else generation
        return new

    def _mark_deleting(self, key: Key) -> None:
        self._write(key, self._merge(key, {"metadata": {"deletionTimestamp": _now()}}))

    def _write(self, key: Key, new: dict[str, Any]) -> None:
        new.setdefault("metadata", {})["resourceVersion"] = self._next_version()
        self._objects[key].history.append(new)

    async def _publish(self, key: Key, kind: str) -> None:
        await self._buses[key[0]].put({"type": kind, "object": self._objects[key].raw})

    async def _delete_cascading(self, key: Key) -> None:
        obj = self._objects[key]
        if obj.deleted:
            return
        raw = obj.raw
        uid = raw.get("metadata", {}).get("uid")
        obj.delete()
        await self._buses[key[0]].put({"type": "DELETED", "object": raw})
        if not uid:
            return
        for other_key, other in list(self._objects.items()):
            if other.deleted:
                continue
            owners = other.get("metadata", {}).get("ownerReferences") or []
            if any(isinstance(o, Mapping) and o.get("uid") == uid for o in owners):
                if other.get("metadata", {}).get("finalizers"):
                    self._mark_deleting(other_key)
                    await self._publish(other_key, "MODIFIED")
                else:
                    await self._delete_cascading(other_key)

    # --- reads ----------------------------------------------------------------------------

    async def _serve_create(self, request: kmock.Request) -> Any:
        key = self._created_keys.pop(request.id)
        async with self._lock:
            return self._objects[key].raw

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload: Any = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        items: list[dict[str, Any]] = payload["items"]
        if selector:
            items = [i for i in items
                     if _selector_matches(selector, i.get("metadata", {}).get("labels") or {})]
        info = self._info(request.resource) if request.resource is not None else None
        kind = info.kind if info is not None and info.kind else None
        result: dict[str, Any] = {
            "metadata": {"resourceVersion": str(next(self._revision))},
            "items": items,
        }
        if kind:
            result["kind"] = f"{kind}List"
        if request.resource is not None:
            group, version = request.resource.group, request.resource.version
            result["apiVersion"] = f"{group}/{version}" if group else str(version)
        return result


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Declare the resources the durable operator and kopf use, with kinds and subresources.

    kopf waits for namespaces and CRDs to exist in the discovery even when it neither lists
    nor watches them (clusterwide, scanning disabled), so they are declared too."""
    declared: list[tuple[str, str, bool, set[str]]] = [
        ("durable.dev/v1alpha1/durableworkerpools", "DurableWorkerPool", True, {"status", "scale"}),
        ("apps/v1/deployments", "Deployment", True, {"status", "scale"}),
        ("v1/pods", "Pod", True, {"status"}),
        ("v1/events", "Event", True, set()),
        ("v1/namespaces", "Namespace", False, {"status"}),
        ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False,
         {"status"}),
    ]
    for name, kind, namespaced, subresources in declared:
        emulator.resources[name] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=_VERBS,
            subresources=subresources, shortnames=set(), categories=set(),
        )


async def wait_until(
    predicate: Any,
    *,
    timeout: float = 10.0,
    what: str = "the condition",
) -> Any:
    """Poll `predicate()` (sync or async) until it returns something truthy; fail at the
    deadline naming `what`. Returns the truthy value."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
        except (KeyError, ValueError, TypeError) as exc:  # object absent or half-built yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.05)
