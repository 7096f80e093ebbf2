"""Searches and paging: query → rids (SQLite) → remembered search → Bundle text.

``total`` follows HAPI's first-pass rule: the first pass reads ``N = max(14, _count)`` matches
and knows the total only if it found fewer than ``N`` — so ``total`` is present iff there are at
most ``max(13, _count - 1)`` matches (FHIR-COMPAT's 13, and the recorded ``Patient?_count=500``
over exactly 500 patients, which has a ``next`` link and no ``total``); later pages (served
from the remembered list) always carry it. A ``next`` link is present iff the page is not
empty and either the total is unknown or more matches remain.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

from sara.fhir import bundle, plan, query, resource
from sara.fhir.errors import BadRequest, Gone, SearchTimeout
from sara.fhir.paging import Cached, SearchCache
from sara.fhir.store import QueryInterrupted, Store
from sara.fhir.writes import check_type

FIRST_PASS_MINIMUM = 13


class Searcher:
    def __init__(
        self,
        store: Store,
        cache: SearchCache,
        *,
        now: Callable[[], str] = resource.now_text,
        max_count: int = 10_000,
        query_timeout: float = 0.0,
    ) -> None:
        self.store = store
        self.cache = cache
        self.now = now
        self.max_count = max_count  # a larger _count is clamped to it, as HAPI's max page size
        self.query_timeout = query_timeout

    def search(
        self, rtype: str, pairs: Sequence[tuple[str, str]], *, url: str, base: str
    ) -> tuple[str, bool]:
        """Bundle text (pretty) and whether the client asked for pretty output.

        ``url`` is the request URL without query (``{base}/{rtype}``), ``base`` the FHIR base.
        """
        check_type(rtype)
        search = query.parse(rtype, list(pairs))
        if search.count is not None and search.count > self.max_count:
            search.count = self.max_count
        key = rtype + "?" + "&".join(f"{k}={v}" for k, v in sorted(pairs))
        cached = self.cache.reuse(key)
        if cached is None:
            sql = plan.build(search, self.store.param_ids)
            cached = Cached(
                search_id=SearchCache.new_id(),
                rtype=rtype,
                key=key,
                rids=self._rids(sql.text, sql.args),
                last_updated=self.now(),
                created=self.cache.clock(),
                format_json=search.format_json,
                pretty=search.pretty,
                page_size=search.page_size,
            )
            self.cache.add(cached)
        matches = len(cached.rids)
        if search.summary_count or search.count == 0:
            text = bundle.searchset(
                search_id=cached.search_id,
                last_updated=cached.last_updated,
                total=matches,
                links=[("self", bundle.self_link(url, pairs))],
                base=base,
                entries=[],
            )
            return text, search.pretty
        threshold = max(FIRST_PASS_MINIMUM, (search.count or 0) - 1)
        total = matches if matches <= threshold else None
        return self._page(cached, 0, search.page_size, total, base, bundle.self_link(url, pairs))

    def page(self, pairs: Sequence[tuple[str, str]], *, base: str) -> tuple[str, bool]:
        """``GET {base}?_getpages=ID&_getpagesoffset=N&_count=C…``."""
        args = dict(pairs)
        search_id = args.get("_getpages", "")
        cached = self.cache.get(search_id)
        if cached is None:
            raise Gone(f'Search ID "{search_id}" does not exist and may have expired')
        offset = _int(args.get("_getpagesoffset", "0"), "_getpagesoffset")
        count = min(_int(args.get("_count", str(cached.page_size)), "_count"), self.max_count)
        pretty = args.get("_pretty", "true" if cached.pretty else "false").lower() != "false"
        fmt = args.get("_format") == "json" or cached.format_json
        self_url = bundle.page_link(
            base, cached.search_id, offset, count, format_json=fmt, pretty_=pretty
        )
        text, _ = self._page(cached, offset, count, len(cached.rids), base, self_url, fmt, pretty)
        return text, pretty

    def _rids(self, sql: str, args: Sequence[object]) -> array[int]:
        try:
            return self.store.rids(sql, args, self.query_timeout)
        except QueryInterrupted as exc:
            raise SearchTimeout(
                f"The search took longer than {exc.seconds:g} s and was stopped "
                "(query_timeout_seconds): narrow it with more parameters"
            ) from None

    def _page(
        self,
        cached: Cached,
        offset: int,
        count: int,
        total: int | None,
        base: str,
        self_url: str,
        format_json: bool | None = None,
        pretty: bool | None = None,
    ) -> tuple[str, bool]:
        fmt = cached.format_json if format_json is None else format_json
        pretty_ = cached.pretty if pretty is None else pretty
        page_rids = cached.rids[offset : offset + count]
        links = [("self", self_url)]
        remaining = len(cached.rids) - offset - len(page_rids)
        if page_rids and (total is None or remaining > 0):
            links.append(
                (
                    "next",
                    bundle.page_link(
                        base,
                        cached.search_id,
                        offset + count,
                        count,
                        format_json=fmt,
                        pretty_=pretty_,
                    ),
                )
            )
        if offset > 0:
            links.append(
                (
                    "previous",
                    bundle.page_link(
                        base,
                        cached.search_id,
                        max(0, offset - count),
                        count,
                        format_json=fmt,
                        pretty_=pretty_,
                    ),
                )
            )
        text = bundle.searchset(
            search_id=cached.search_id,
            last_updated=cached.last_updated,
            total=total,
            links=links,
            base=base,
            entries=self.store.bodies(page_rids),
        )
        return text, pretty_


def _int(value: str, name: str) -> int:
    if not query.is_count(value):
        raise BadRequest(f'Invalid {name} value "{value}"')
    return int(value)
