"""Kopf handlers: parse -> build -> adopt -> apply -> status. Decisions live in pure modules.

:func:`register` puts every handler on a registry, so tests and the CLI each get a fresh one
configured with their own :class:`~sara.operator.model.OperatorConfig`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import kopf

from sara.operator import builders, errors, kube, model
from sara.operator import status as status_logic
from sara.operator.builders import seed
from sara.operator.metrics import Metrics

RESOURCE = (model.GROUP, model.VERSION, model.PLURAL)
WATCH_SERVER_TIMEOUT = 300  # seconds


def _announce(body: kopf.Body, result: status_logic.Result) -> None:
    for t in result.transitions:
        message = f"{t.type}={t.status} ({t.reason}): {t.message}"
        if t.warning:
            kopf.warn(body, reason=t.type, message=message)
        else:
            kopf.info(body, reason=t.type, message=message)


def _saw(memo: kopf.Memo, meta: kopf.Meta) -> None:
    """Remember the newest generation a reconcile has started on (this process)."""
    generation = meta.get("generation") or 0
    memo["seen_generation"] = max(memo.get("seen_generation", 0), generation)


def _stale(memo: kopf.Memo, meta: kopf.Meta) -> bool:
    """Whether ``meta`` (a timer's view) is older than a spec a reconcile has started on."""
    return bool(memo.get("seen_generation", 0) > (meta.get("generation") or 0))


def _write(patch: kopf.Patch, result: status_logic.Result) -> None:
    for key, value in result.status.items():
        patch.status[key] = value


class _Lazy:
    """The API wrapper, built on first use (after Kopf's login loaded the credentials)."""

    def __init__(self, factory: Callable[[], kube.Cluster]) -> None:
        self._factory = factory
        self._cluster: kube.Cluster | None = None

    def __call__(self) -> kube.Cluster:
        if self._cluster is None:
            self._cluster = self._factory()
        return self._cluster


def register(
    registry: kopf.OperatorRegistry,
    config: model.OperatorConfig,
    metrics: Metrics,
    cluster_factory: Callable[[], kube.Cluster] = kube.Cluster.from_default,
) -> None:
    """Register the ClinicalAgent handlers on ``registry``."""
    cluster = _Lazy(cluster_factory)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Kopf's bookkeeping under our own API group, in annotations only (status stays ours).
        settings.persistence.finalizer = f"{model.GROUP}/operator"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=model.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=model.GROUP)
        # Without timeouts a watch that a load balancer drops silently is never re-opened and
        # the operator goes blind (nolar/kopf#585): the server ends each watch, the client
        # gives up shortly after, and Kopf resumes from the last resourceVersion.
        settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
        settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 60
        settings.watching.connect_timeout = 30

    @asynccontextmanager
    async def measured(handler: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        except kopf.PermanentError:
            metrics.reconcile_errors.labels(handler, "InvalidSpec").inc()
            raise
        except kopf.TemporaryError:
            metrics.reconcile_errors.labels(handler, "ApplyFailed").inc()
            raise
        except Exception:
            metrics.reconcile_errors.labels(handler, "Unexpected").inc()
            raise
        finally:
            metrics.reconcile_seconds.labels(handler).observe(time.perf_counter() - started)

    def parse(
        name: str, spec: kopf.Spec, st: kopf.Status, meta: kopf.Meta
    ) -> tuple[model.ClinicalAgentSpec | None, status_logic.Result | None]:
        try:
            return model.parse(name, dict(spec)), None
        except model.InvalidSpecError as exc:
            rejected = status_logic.compute_rejected(
                "InvalidSpec",
                str(exc),
                dict(st),
                generation=meta.get("generation"),
                now=datetime.now(UTC),
            )
            return None, rejected

    async def refresh(
        spec: model.ClinicalAgentSpec,
        names: model.Names,
        body: kopf.Body,
        st: kopf.Status,
        patch: kopf.Patch,
        generation: int | None,
    ) -> None:
        """Observe the children, start the seed Job when due, write the status.

        ``generation`` is the spec generation whose children were applied: the reconcile
        handler passes the current one, the timer the one already observed.
        """
        api = cluster()
        previous = dict(st)
        observed = await api.observe(names)
        if status_logic.seed_due(spec, observed, previous):
            job = seed.job(spec, names, config.images)
            kopf.adopt(job, owner=body)
            await api.apply(job)
            kopf.info(body, reason="Seeding", message="FHIR server ready; seed Job created")
            observed = await api.observe(names)
        result = status_logic.compute(
            spec,
            names,
            observed,
            previous,
            generation=generation,
            now=datetime.now(UTC),
        )
        _write(patch, result)
        _announce(body, result)

    async def apply_children(
        spec: model.ClinicalAgentSpec, names: model.Names, body: kopf.Body, uid: str
    ) -> None:
        """Build, adopt and apply every child; delete those the spec no longer asks for."""
        api = cluster()
        key = secrets.token_urlsafe(32)  # used only if the key Secret does not exist yet
        children = builders.children(spec, names, config.images, api_key=key, include_seed=False)
        monitored = await api.has_service_monitors()
        children = [c for c in children if monitored or c["kind"] != "ServiceMonitor"]
        retained = builders.retained(spec, names)
        kopf.adopt(
            [c for c in children if (c["kind"], c["metadata"]["name"]) not in retained],
            owner=body,
        )
        for outcome, count in (await api.apply_all(children)).items():
            metrics.children_applied.labels(outcome).inc(count)
        kinds = [k for k in kube.KINDS if monitored or k != "ServiceMonitor"]
        deleted = await api.prune(names, uid, builders.keep(spec, names, children), kinds)
        obsolete = builders.agent.obsolete_key_secret(spec, names)
        if obsolete and await api.delete("Secret", names.namespace, obsolete):
            deleted.append(("Secret", obsolete))
        metrics.children_applied.labels("deleted").inc(len(deleted))

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)  # type: ignore[arg-type]
    async def reconcile(
        name: str,
        namespace: str,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        async with measured("reconcile"):
            _saw(memo, meta)
            cr, rejected = parse(name, spec, status, meta)
            if cr is None:
                assert rejected is not None
                _write(patch, rejected)
                _announce(body, rejected)
                raise errors.InvalidSpec(rejected.status["conditions"][0]["message"])
            names = model.Names(name, namespace)
            await apply_children(cr, names, body, meta["uid"])
            memo["applied_generation"] = meta.get("generation")  # fresh for the timer
            await refresh(cr, names, body, status, patch, meta.get("generation"))

    @kopf.timer(*RESOURCE, interval=config.status_interval, registry=registry)  # type: ignore[arg-type]
    async def watch_children(
        name: str,
        namespace: str,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        async with measured("status"):
            if _stale(memo, meta):
                return  # a newer spec is being (or was) reconciled: this view is out of date
            cr, rejected = parse(name, spec, status, meta)
            if cr is None:
                # The reconcile handler reported it; but a status computed from the previous
                # spec (this timer's, running beside that handler) may have landed after its
                # report: say it again, so an invalid spec never stays marked accepted.
                if rejected is not None and status_logic.accepted(status):
                    _write(patch, rejected)
                return
            if not status_logic.accepted(status):
                return  # children not applied yet (or not yet for this spec): reconcile first
            names = model.Names(name, namespace)
            # The status view may predate the last reconcile; the in-process memo does not.
            generation = memo.get("applied_generation", status.get("observedGeneration"))
            await refresh(cr, names, body, status, patch, generation)
            if _stale(memo, meta):
                patch.clear()  # the spec changed while this ran: its status would be stale
