"""kmock's Kubernetes emulator, extended with the API behaviour Kopf and the operator rely on.

Filled gaps (see ../shared/KOPF-TESTING.md):

* ``uid``, ``creationTimestamp``, ``generation`` (bumped on spec changes, not on ``/status``)
  and a ``resourceVersion`` from one cluster-wide counter;
* ``generateName`` (Kopf posts Events with it);
* lists report the counter as their ``resourceVersion``; a watch from a ``resourceVersion``
  replays only the later events, and subscribes before replaying so nothing is lost;
* a JSON-patch ``test`` failure answers 422 like a real server, not 500;
* label selectors on lists (equality terms);
* ``/api/v1/namespaces`` (kmock cannot parse it; Kopf lists and watches it when it is given
  namespaces): answered with the namespaces that hold objects, and an idle watch;
* constant-time routing: kmock matches each request against every request recorded so far
  (quadratic: 50 ClinicalAgents took minutes), so only the current one is kept there and the
  full log lives in :attr:`SaraEmulator.history`.

Fault injection for tests/faults: :attr:`SaraEmulator.faults` holds :class:`Fault` entries, each
answering the first matching request with an error status (once), optionally after applying
it (a create that raced another writer or whose answer was lost: 409 AlreadyExists).

Also :func:`serve` (emulator + HTTP server + kubeconfig) and :func:`run_operator` (Kopf in its
own thread), shared by the tests and ``benchmarks/operator_reconcile.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import kopf
import kopf.testing
import kubernetes
import yaml
from kmock._internal import aiobus, apps, enums, k8s, rendering

CR = ("clinical.sara.dev", "v1alpha1", "clinicalagents")

#: Built-in kinds the operator manages, with the verbs it uses.
BUILTINS: list[tuple[str, str, str, str]] = [
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "secrets", "Secret"),
    ("", "v1", "services", "Service"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("", "v1", "events", "Event"),
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("batch", "v1", "jobs", "Job"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
]
SERVICE_MONITORS = ("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor")
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


class _Clock:
    """One cluster-wide sequence for object versions and events (like etcd's revision)."""

    def __init__(self) -> None:
        self.last = 0

    def tick(self) -> int:
        self.last += 1
        return self.last


class _RecordingBus(aiobus.Bus[Any]):
    """A bus that also keeps every event with its sequence number (for watch resumption)."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock
        self.log: list[tuple[int, Any]] = []

    async def put(self, *items: Any) -> None:
        for item in items:
            self.log.append((self._clock.tick(), item))
        await super().put(*items)


@attrs.define
class Fault:
    """Answer the first ``method`` request on ``plural`` for object ``name`` with ``status``;
    with ``applied`` the request takes effect first (its answer is what fails)."""

    method: str  # POST | PATCH | GET | DELETE
    plural: str  # deployments, services, ...
    name: str
    status: int
    applied: bool = False
    served: bool = False

    def matches(self, request: rendering.Request) -> bool:
        method = getattr(request.method, "value", request.method)
        data = request.data if isinstance(request.data, dict) else {}
        name = request.name or (data.get("metadata") or {}).get("name")
        plural = getattr(request.resource, "plural", None)
        return (
            not self.served
            and str(method).upper() == self.method
            and plural == self.plural
            and name == self.name
            and request.subresource is None
        )


@attrs.define(kw_only=True)
class SaraEmulator(k8s.KubernetesEmulator):
    """The emulator with resource versions, generations, uids and resumable watches."""

    _clock: _Clock = attrs.field(factory=_Clock, init=False)
    history: list[rendering.Request] = attrs.field(factory=list, init=False)
    namespaces: set[str] = attrs.field(factory=set, init=False)  # "exist" for Kopf
    faults: list[Fault] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Lists report the clock; a watch from it replays exactly the later events.
        self._buses = collections.defaultdict(lambda: _RecordingBus(self._clock))

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path.rstrip("/") != "/api/v1/namespaces":
            return await super().__call__(raw_request)
        if raw_request.query.get("watch") in ("true", "1"):
            response = aiohttp.web.StreamResponse()
            await response.prepare(raw_request)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await asyncio.Event().wait()  # no namespace events; until the client leaves
            return response
        names = sorted(self.namespaces | {ns for (_r, ns, _n) in self._objects if ns})
        return aiohttp.web.json_response(
            {
                "apiVersion": "v1",
                "kind": "NamespaceList",
                "metadata": {"resourceVersion": str(self._clock.last)},
                "items": [{"metadata": {"name": n}} for n in names],
            }
        )

    def _next_rv(self) -> str:
        return str(self._clock.tick())

    async def _handle(self, request: rendering.Request) -> Any:
        fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is None:
            return await self._serve(request)
        fault.served = True
        if fault.applied:
            await self._serve(request)
        else:
            self.history.append(request)
        raise k8s.KubernetesError(
            status=fault.status,
            reason="AlreadyExists" if fault.status == 409 else "InternalError",
            message=f"injected by the test: HTTP {fault.status}",
        )

    async def _serve(self, request: rendering.Request) -> Any:
        self.history.append(request)
        del self._requests[:-1]  # see the module docstring: routing scans this list
        if request.resource is not None and isinstance(request.data, dict | list):
            async with self._lock:
                if request.action == enums.action.CREATE and isinstance(request.data, dict):
                    self._on_create(request)
                elif request.action == enums.action.UPDATE and request.name is not None:
                    self._on_update(request)
        try:
            return await super()._handle(request)
        except k8s.KubernetesError:
            raise
        except Exception as exc:  # a failed JSON-patch "test" op: 422 as a real server says
            if request.action == enums.action.UPDATE and isinstance(request.data, list):
                raise k8s.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
            raise

    def _on_create(self, request: rendering.Request) -> None:
        md = request.data.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + secrets.token_hex(3)
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", _now())
        md["generation"] = 1
        md["resourceVersion"] = self._next_rv()

    def _on_update(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        current = self._objects[key].raw if key in self._objects else {}
        is_status = str(request.url.path).endswith("/status")
        rv = self._next_rv()
        if isinstance(request.data, dict):
            md = request.data.setdefault("metadata", {}) or {}
            request.data["metadata"] = md
            md["resourceVersion"] = rv
            spec_changed = "spec" in request.data and request.data["spec"] != current.get("spec")
            if spec_changed and not is_status:
                generation = int(current.get("metadata", {}).get("generation", 1))
                md["generation"] = generation + 1
        else:
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": rv})

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload: Any = await super()._serve_list(request)
        payload["metadata"]["resourceVersion"] = str(self._clock.last)
        selector = request.params.get("labelSelector")
        if selector:
            terms = dict(term.split("=", 1) for term in selector.split(",") if "=" in term)
            payload["items"] = [
                item
                for item in payload["items"]
                if all(
                    (item.get("metadata", {}).get("labels") or {}).get(k) == v
                    for k, v in terms.items()
                )
            ]
        return payload  # type: ignore[no-any-return]

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""
        assert request.resource is not None
        bus = self._buses[request.resource]
        assert isinstance(bus, _RecordingBus)
        since = request.params.get("resourceVersion", "")
        async with self._lock:  # every put happens under this lock: mark + snapshot is atomic
            marker = await bus.mark()
            if since.isdigit() and int(since) > 0:
                backlog = [event for seq, event in bus.log if seq > int(since)]
            else:
                backlog = [
                    {"type": "ADDED", "object": obj.raw}
                    for (res, _ns, _name), obj in self._objects.items()
                    if res == request.resource and not obj.deleted
                ]
        try:
            for event in backlog:
                if self._matches(request, event):
                    yield event
            async for event in bus.stream(since=marker):
                if self._matches(request, event):
                    yield event
        finally:
            await bus.unmark(marker)

    @staticmethod
    def _matches(request: rendering.Request, event: Any) -> bool:
        md = event.get("object", {}).get("metadata", {})
        if request.namespace is not None and md.get("namespace") != request.namespace:
            return False
        return request.name is None or md.get("name") == request.name


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def declare(emulator: SaraEmulator, *, service_monitors: bool = False) -> None:
    """Declare the CR, Kopf's built-ins and every kind the operator manages."""
    emulator.resources.load_bundled()
    emulator.resources["/".join(CR)] = kmock.ResourceInfo(
        kind="ClinicalAgent",
        namespaced=True,
        verbs=VERBS,
        subresources={"status"},
        shortnames={"cla"},
    )
    kinds = [*BUILTINS, *([SERVICE_MONITORS] if service_monitors else [])]
    for group, version, plural, kind in kinds:
        key = f"{group}/{version}/{plural}" if group else f"{version}/{plural}"
        emulator.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=True, verbs=VERBS)


@contextlib.asynccontextmanager
async def serve(
    tmp: Path, *, service_monitors: bool = False, namespaces: tuple[str, ...] = ()
) -> AsyncIterator[SaraEmulator]:
    """Run the emulator on 127.0.0.1 and point the ``kubernetes`` client's kubeconfig at it."""
    async with SaraEmulator() as emulator, apps.Server(emulator):
        declare(emulator, service_monitors=service_monitors)
        emulator.namespaces.update(namespaces)
        config = tmp / "kubeconfig"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emu", "cluster": {"server": str(emulator.url)}}],
                    "users": [{"name": "emu", "user": {"token": "test"}}],
                    "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "emu"}}],
                    "current-context": "emu",
                }
            )
        )
        saved = kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(config)
        try:
            yield emulator
        finally:
            kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved


def operator_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.1
    settings.posting.level = 20  # INFO events and up
    settings.networking.request_timeout = 10
    return settings


@contextlib.asynccontextmanager
async def run_operator(
    registry: kopf.OperatorRegistry, *, stop_within: float = 20
) -> AsyncIterator[kopf.testing.KopfRunner]:
    """Run Kopf cluster-wide in its own thread; stop it in an executor on exit.

    The emulator serves on the caller's loop, so the (blocking) runner exit runs in a thread.
    """
    runner = kopf.testing.KopfRunner(
        ["run", "--standalone", "-A", "--verbose"],
        registry=registry,
        settings=operator_settings(),
        timeout=stop_within,
    )
    await asyncio.get_running_loop().run_in_executor(None, runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.get_running_loop().run_in_executor(None, runner.__exit__, None, None, None)


def thread_count() -> int:
    return threading.active_count()
