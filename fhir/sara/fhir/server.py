"""Running the server process: seed/load the store, then serve with uvicorn (I/O edge)."""

from __future__ import annotations

import gc
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import structlog
import uvicorn
from uvicorn.protocols.http import h11_impl, httptools_impl

from sara.common.http import BoundedHttpToolsProtocol
from sara.fhir import ingest
from sara.fhir.app import create_app
from sara.fhir.settings import ServerSettings
from sara.fhir.store import Store
from sara.fhir.writes import IngestStats, Writer

log = structlog.get_logger("sara.fhir")


def blank_reason_phrases() -> None:
    """Send ``HTTP/1.1 400 `` with an empty reason phrase, as HAPI's Tomcat does.

    Clients then show ``400 Client Error:  for url: …`` exactly as with the benchmark's
    server. uvicorn keeps its status lines in module-level tables; they are rewritten here, in
    the serving process only, just before it starts.
    """
    for code in list(httptools_impl.STATUS_LINE):
        httptools_impl.STATUS_LINE[code] = b"HTTP/1.1 " + str(code).encode() + b" \r\n"
    for code in list(h11_impl.STATUS_PHRASES):
        h11_impl.STATUS_PHRASES[code] = b""


def prepare(
    store: Store,
    *,
    loads: Iterable[Path] = (),
    synthetic: int | None = None,
    seed: int = 1,
    scale: str = "small",
) -> list[tuple[str, IngestStats, float]]:
    """Seed an empty store from the generator, then load files (idempotent)."""
    writer = Writer(store)
    done: list[tuple[str, IngestStats, float]] = []
    if synthetic and store.count() == 0:
        started = time.perf_counter()
        stats = writer.ingest(ingest.synthetic(synthetic, seed, scale), keep_meta=False)
        done.append((f"synthetic:{synthetic}:{seed}:{scale}", stats, time.perf_counter() - started))
    for path in loads:
        started = time.perf_counter()
        stats = writer.ingest(ingest.read_file(path))
        done.append((str(path), stats, time.perf_counter() - started))
    for source, stats, seconds in done:
        log.info(
            "fhir.loaded",
            source=source if not source.startswith("synthetic") else "synthetic",
            created=stats.created,
            updated=stats.updated,
            unchanged=stats.unchanged,
            seconds=round(seconds, 2),
        )
    return done


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("fhir.listening", host=host, port=port)
                # one plain line on stdout: scripts and tests wait for it
                print(f"FHIR server ready at http://{host}:{port}/fhir/", flush=True)


def serve(settings: ServerSettings) -> None:
    store = Store(settings.db)
    try:
        app = create_app(settings, store)
        blank_reason_phrases()
        gc.collect()
        gc.freeze()  # start-up objects never need scanning again: fewer, shorter GC pauses
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            http=BoundedHttpToolsProtocol,
            access_log=False,  # uvicorn's access log prints query strings (patient ids)
            log_config=None,
            server_header=False,
            lifespan="on",
        )
        _Server(config).run()
    finally:
        store.close()
    sys.stdout.flush()
