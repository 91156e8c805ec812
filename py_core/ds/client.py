"""The DS GraphQL client: requests with timeouts, retries and rate-limit waits; French errors.

Policy (issue « Nothing lost »):
- every request has a timeout (the transport's; DS cuts a query at 30 s itself, so a request
  silent for 40 s is dead);
- no HTTP answer (but not a CORS block: retrying cannot help there) and HTTP 5xx are retried
  `max_retries` times with exponential backoff, the agent seeing « nouvel essai dans N s »;
- HTTP 429 waits until `RateLimit-Reset` (or `Retry-After`), with a countdown, then goes on;
- a GraphQL answer with `errors` is never taken as complete: the caller gets the errors with
  the partial data (`Answer`) and decides (retry the page, skip the dossiers concerned).
Errors are matched on their `extensions.code` and `path`, never on the message text alone.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from .dates import EPOCH
from .models import DeletedDossier, Dossier, PageInfo, Staff, Structure
from .queries import MUTATION_FILES, document
from .transport import NetworkError, Transport
from ..clock import Clock
from ..progress import Progress

DEFAULT_ENDPOINT = "https://demarche.numerique.gouv.fr/api/v2/graphql"
PAGE_SIZE = 100  # DS silently caps `first` at 100
PAGE_RETRIES = 2  # a page answered with errors is asked again this many times
MAX_RATE_WAITS = 30
RATE_LIMIT = 400  # DS allows 400 requests per minute per token: never send more
RATE_WINDOW_S = 60.0



@dataclass
class Answer:
    """What DS answered: `data` (maybe partial) and the GraphQL `errors` that came with it."""

    data: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error_codes(self) -> set[str]:
        return {str((e.get("extensions") or {}).get("code", "")) for e in self.errors}


@dataclass
class Page:
    """One page of dossiers: the complete ones, and the numbers DS could not answer in full."""

    nodes: list[Dossier]
    page_info: PageInfo
    skipped: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class LightPage:
    """One page of the listing: light dossiers as DS sent them (`refresh.graphql`)."""

    nodes: list[dict[str, Any]]
    page_info: PageInfo


class DSClient:
    def __init__(self, endpoint: str, token: str, transport: Transport, *, progress: Progress | None = None,
                 clock: Clock | None = None, max_retries: int = 4, retry_base: float = 1.0):
        self.endpoint = endpoint
        self._token = token
        self.transport = transport
        self.request_count = 0
        self.progress = progress or Progress()  # the job's too: its waits renew the job's lease
        self.clock = clock or Clock()  # the job's too
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.sent: deque[float] = deque()  # when the requests of the last minute left
        # the fastest round trip of each query (how far DS is, see `jobs.streams.Streams`: the
        # fastest, because an answer waits while the widget is busy, e.g. reading the copy)
        self.fastest_s: dict[str, float] = {}
        # every answer's round trip, with how many requests were out at most meanwhile (is DS
        # slower with several at once? `plan.windows.wanted_streams`): (query, seconds, at most out)
        self.round_trips: deque[tuple[str, float, int]] = deque(maxlen=64)
        self._out: list[list[int]] = []  # the requests out: [the most that were out with it]
        self.server_time: float | None = None  # DS's clock: the latest `Date` of its answers (seconds)
        self.dates: deque[tuple[float, float]] = deque(maxlen=8)  # (when an answer came, its `Date`): `clock_at`

    def __repr__(self) -> str:  # never show the token
        return f"DSClient({self.endpoint!r})"

    # -- one request -------------------------------------------------------------------------
    async def execute(self, query_name: str, variables: dict[str, Any], *, number: int) -> Answer:
        body = json.dumps(
            {"query": document(query_name), "variables": variables, "operationName": _operation(query_name)}
        ).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        failures = rate_waits = 0
        while True:
            await self._pace()
            self.request_count += 1
            started = self.clock.monotonic()
            out = self._sent()
            try:
                response = await self.transport.post(self.endpoint, headers, body)
                received = self.clock.monotonic()  # not before the answer came (`clock_at`)
                elapsed = response.seconds if response.seconds is not None else received - started
                self.fastest_s[query_name] = min(elapsed, self.fastest_s.get(query_name, elapsed))
                self.round_trips.append((query_name, elapsed, out[0]))
            except NetworkError as error:
                if error.cors or failures >= self.max_retries:
                    if error.timeout:
                        raise errors.ds_too_slow(self.endpoint) from None
                    raise errors.ds_unreachable(self.endpoint, cors=error.cors) from None
                failures += 1
                await self._wait(self._backoff(failures), "DS ne répond pas"
                                 + (" (délai dépassé)" if error.timeout else "")
                                 + f" : nouvel essai ({failures}/{self.max_retries})")
                continue
            finally:
                self._out = [o for o in self._out if o is not out]
            self._saw_date(response.header("date"), received)
            if response.status == 429:
                rate_waits += 1
                wait_s = rate_limit_wait(response.header("ratelimit-reset"), response.header("retry-after"), self.clock.now())
                if rate_waits > MAX_RATE_WAITS:
                    raise errors.rate_limited(wait_s)
                await self._wait(wait_s, "DS limite le nombre de requêtes : reprise automatique")
                continue
            if response.status >= 500 and failures < self.max_retries:
                failures += 1
                await self._wait(self._backoff(failures),
                                 f"DS a répondu par une erreur {response.status} : nouvel essai ({failures}/{self.max_retries})")
                continue
            return interpret(response.status, response.body, number)

    def _sent(self) -> list[int]:
        """One more request out: every request out counts it (see `round_trips`)."""
        mine = [0]
        self._out.append(mine)
        for other in self._out:
            other[0] = max(other[0], len(self._out))
        return mine

    def round_trip(self, query_name: str, *, out: int = 1) -> float | None:
        """How long DS takes to answer `query_name`: alone (`out` 1), the fastest of the last
        four answers that had no other request out (an answer also waits while the widget is
        busy, which only ever adds), else the fastest answer of all (none alone: the first
        light pages go out beside the structure, and the next one while the structure's
        answer, arrived, is not taken yet; the fastest is never slower than alone); with `out`
        requests out (at most, while it was out), the median of the last 2 × `out` such
        answers, once there are `out` (None: not yet): a step's evidence is complete when
        each of its requests came back.
        The median, not the fastest: a DS that serves one request at a time answers the first
        of two at once as fast as alone, and makes the other wait."""
        if out == 1:
            times = [s for q, s, n in self.round_trips if q == query_name and n == 1][-4:]
            return min(times or [s for q, s, _ in self.round_trips if q == query_name], default=None)
        times = sorted([s for q, s, n in self.round_trips if q == query_name and n == out][-2 * out:])
        return times[len(times) // 2] if times and len(times) >= out else None

    def last_round_trip(self, query_name: str) -> float:
        """DS's round trip for the last answer to `query_name` (0: none yet)."""
        return next((s for q, s, _ in reversed(self.round_trips) if q == query_name), 0.0)

    async def _pace(self) -> None:
        """Several streams at once must stay under DS's limit: at most `RATE_LIMIT` requests in
        any `RATE_WINDOW_S` seconds (waits, with a countdown, until the oldest one is a minute old)."""
        now = self.clock.monotonic()
        while self.sent and self.sent[0] <= now - RATE_WINDOW_S:
            self.sent.popleft()
        if len(self.sent) >= RATE_LIMIT:
            await self._wait(self.sent[0] + RATE_WINDOW_S - now, "Limite de DS (400 requêtes par minute) : reprise")
            return await self._pace()
        self.sent.append(now)

    def _saw_date(self, value: str | None, received: float) -> None:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() if value else None
        except (TypeError, ValueError):
            seconds = None
        if seconds is None:
            return
        self.dates.append((received, seconds))
        if self.server_time is None or seconds > self.server_time:
            self.server_time = seconds

    def clock_at(self, moment: float) -> float | None:
        """DS's clock at `moment` (this client's monotonic clock), at least: an answer dated `D`
        that came at `t` was dated before it left (in whole seconds), so DS's clock read `D`
        or more at `t`, and `D − (t − moment)` or more at `moment` — whether that answer was
        asked before or after it. The best of the last answers; None: none carried a date."""
        return max((date - (received - moment) for received, date in self.dates), default=None)

    def _backoff(self, failures: int) -> float:
        return self.retry_base * 2 ** (failures - 1)

    async def _wait(self, seconds: float, why: str) -> None:
        """Wait, telling the agent every second how long is left."""
        await self.progress.before_wait()
        remaining = seconds
        while remaining > 0:
            self.progress.waiting(max(1, round(remaining)), why)
            step = min(1.0, remaining)
            await self.clock.sleep(step)
            remaining -= step

    # -- queries -----------------------------------------------------------------------------
    async def structure(self, number: int) -> Structure:
        answer = await self.execute("structure", {"number": number}, number=number)
        if answer.errors:
            raise _query_error(answer)
        return Structure.from_response(answer.data)

    async def dossier_pages(self, number: int, updated_since: str | None, after: str | None = None, *,
                            state: str | None = None, created_since: str | None = None) -> AsyncIterator[Page]:
        """Pages of dossiers modified since `updated_since` (ordered by last modification),
        from the cursor `after`; only those in `state` when given. Without `updated_since`,
        ordered by deposit date, from `created_since` (a deposit date, inclusive) when given.
        A page with errors is asked again; a DS `timeout` asks again with a smaller page; what
        stays partial is reported in `Page.skipped`."""
        size = PAGE_SIZE
        while True:
            variables = {"number": number, "first": size, "after": after, "updatedSince": updated_since}
            if state is not None:
                variables["state"] = state
            if created_since is not None:
                variables["createdSince"] = created_since
            page = None
            for attempt in range(PAGE_RETRIES + 1):
                answer = await self.execute("dossiers", variables, number=number)
                if not answer.errors:
                    page = _page(answer)
                    break
                if "timeout" in answer.error_codes() and size > 10:
                    size = max(10, size // 2)
                    variables = {**variables, "first": size}
                if attempt == PAGE_RETRIES:
                    page = _partial_page(answer)
            assert page is not None
            yield page
            if not page.page_info.has_next_page or not page.page_info.end_cursor:
                return
            after = page.page_info.end_cursor

    async def newest_modification(self, number: int) -> str | None:
        """The newest `dateDerniereModification` of the procedure's dossiers (None: none)."""
        answer = await self.execute("newest", {"number": number, "updatedSince": EPOCH}, number=number)
        if answer.errors:
            raise _query_error(answer)
        nodes = answer.data["demarche"]["dossiers"]["nodes"] or []
        return nodes[-1]["dateDerniereModification"] if nodes else None

    async def dossier(self, number: int, dossier_number: int) -> Dossier | None:
        """One dossier by number (to take again one DS could not answer in full); None when
        DS no longer has it for this procedure."""
        answer = await self.execute("dossier", {"number": dossier_number}, number=number)
        node = answer.data.get("dossier")
        if answer.errors or not isinstance(node, dict):
            if node is None and "not_found" in answer.error_codes():
                return None
            raise _query_error(answer)
        if (node.get("demarche") or {}).get("number") != number:
            return None
        return Dossier.model_validate(node)

    async def instructeurs(self, number: int) -> Staff:
        """Who may send: the procedure's groupes with their instructeurs, and its labels' ids."""
        answer = await self.execute("instructeurs", {"number": number}, number=number)
        if answer.errors:
            raise _query_error(answer)
        return Staff.from_response(answer.data)

    async def mutate(self, field_name: str, input_: dict[str, Any], *, number: int) -> tuple[dict[str, Any], list[str]]:
        """One mutation of the send: its payload, and what DS refused (the payload's `errors`,
        or a top-level error such as a dossier DS no longer has), [] when it was applied."""
        answer = await self.execute(MUTATION_FILES[field_name], {"input": input_}, number=number)
        payload = (answer.data.get(field_name) if isinstance(answer.data, dict) else None) or {}
        messages = [str(e.get("message", "")) for e in payload.get("errors") or []]
        return payload, messages + [str(e.get("message", "")) for e in answer.errors]

    async def refresh_pages(self, number: int, *, filtered: bool,
                            created_since: str | None = None) -> AsyncIterator[LightPage]:
        """Every dossier DS lists for the procedure, light (number, modification date, labels,
        and what the agent's filter looks at when there is one: `filtered`), page by page,
        ordered by deposit date (from `created_since`, a deposit date, inclusive, when given):
        the complete list of the dossiers that exist, so a page with errors fails the sync."""
        after = None
        while True:
            variables = {"number": number, "first": PAGE_SIZE, "after": after, "filtered": filtered}
            if created_since is not None:
                variables["createdSince"] = created_since
            answer = await self.execute("refresh", variables, number=number)
            for _ in range(PAGE_RETRIES):
                if not answer.errors:
                    break
                answer = await self.execute("refresh", variables, number=number)
            if answer.errors:  # the listing decides removals: it must be complete
                raise _query_error(answer)
            connection = answer.data["demarche"]["dossiers"]
            page = LightPage(connection["nodes"] or [], PageInfo.model_validate(connection["pageInfo"]))
            yield page
            if not page.page_info.has_next_page or not page.page_info.end_cursor:
                return
            after = page.page_info.end_cursor

    async def deletions(self, number: int, deleted_since: str | None, *, confirmed: bool = True) -> tuple[list[DeletedDossier], list[DeletedDossier]]:
        """(confirmed deletions since `deleted_since`, every dossier now in the bin)."""
        found: dict[str, list[DeletedDossier]] = {"deletedDossiers": [], "pendingDeletedDossiers": []}
        cursors: dict[str, str | None] = {"deletedDossiers": None, "pendingDeletedDossiers": None}
        active = {"deletedDossiers": confirmed, "pendingDeletedDossiers": True}
        while any(active.values()):
            variables = {
                "number": number,
                "deletedSince": deleted_since,
                "after": cursors["deletedDossiers"],
                "pendingAfter": cursors["pendingDeletedDossiers"],
                "withDeleted": active["deletedDossiers"],
                "withPending": active["pendingDeletedDossiers"],
            }
            answer = await self.execute("deleted_dossiers", variables, number=number)
            if answer.errors:
                raise _query_error(answer)
            for name in list(cursors):
                if not active[name]:
                    continue
                connection = answer.data["demarche"][name]
                found[name].extend(DeletedDossier.model_validate(node) for node in connection["nodes"])
                info = connection["pageInfo"]
                cursors[name] = info["endCursor"]
                active[name] = bool(info["hasNextPage"] and info["endCursor"])
        return found["deletedDossiers"], found["pendingDeletedDossiers"]


def _page(answer: Answer) -> Page:
    connection = answer.data["demarche"]["dossiers"]
    return Page([Dossier.model_validate(n) for n in connection["nodes"]], PageInfo.model_validate(connection["pageInfo"]))


def _partial_page(answer: Answer) -> Page:
    """Keep the dossiers DS answered in full; name the others. An error that cannot be tied to
    one dossier (or a page without its cursor) fails the page: nothing is written."""
    connection = ((answer.data.get("demarche") or {}).get("dossiers")) if isinstance(answer.data, dict) else None
    if not isinstance(connection, dict) or not isinstance(connection.get("pageInfo"), dict):
        raise _query_error(answer)
    nodes = connection.get("nodes") or []
    bad: set[int] = set()
    for error in answer.errors:
        path = error.get("path") or []
        if len(path) >= 4 and path[:3] == ["demarche", "dossiers", "nodes"] and isinstance(path[3], int):
            bad.add(path[3])
        else:
            raise _query_error(answer)
    skipped, kept = [], []
    for i, node in enumerate(nodes):
        if i in bad or not isinstance(node, dict):
            if not isinstance(node, dict) or not isinstance(node.get("number"), int):
                raise _query_error(answer)  # a dossier we could not even name
            skipped.append(node["number"])
        else:
            kept.append(Dossier.model_validate(node))
    problems = sorted({str(e.get("message", ""))[:200] for e in answer.errors})
    return Page(kept, PageInfo.model_validate(connection["pageInfo"]), skipped, problems)


def _query_error(answer: Answer) -> errors.DSError:
    first = answer.errors[0] if answer.errors else {}
    code = str((first.get("extensions") or {}).get("code", ""))
    return errors.ds_query_error(str(first.get("message", "")), code)


def _operation(query_name: str) -> str:
    return "otp" + "".join(part.capitalize() for part in query_name.split("_"))


def interpret(status: int, body: bytes, number: int) -> Answer:
    """Turn an HTTP answer of DS into an `Answer`, or raise the matching French error (pure).
    Errors about the procedure itself (`path` = ["demarche"] or no data at all) are final."""
    if status == 429:
        raise errors.rate_limited(None)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if status >= 500:
            raise errors.ds_server_error(status) from None
        raise errors.ds_bad_response(f"HTTP {status}") from None
    if not isinstance(payload, dict):
        raise errors.ds_bad_response(f"HTTP {status}")
    problems = [p for p in payload.get("errors") or [] if isinstance(p, dict)]
    first = problems[0] if problems else {}
    message = str(first.get("message", ""))
    code = str((first.get("extensions") or {}).get("code", ""))
    if status == 401:
        raise errors.token_expired()
    if status == 403:
        if "forbidden network" in message.lower():
            raise errors.forbidden_network(message)
        raise errors.token_rejected()
    if status >= 500:
        raise errors.ds_server_error(status, message)
    data = payload.get("data")
    for problem in problems:
        path = problem.get("path") or []
        problem_code = str((problem.get("extensions") or {}).get("code", ""))
        about_procedure = path in (["demarche"], ["demarcheDescriptor"]) or (not path and data is None)
        if about_procedure and problem_code == "not_found":
            raise errors.demarche_not_found(number)
        if about_procedure and problem_code == "unauthorized":
            raise errors.demarche_not_accessible(number)
    if problems and not isinstance(data, dict):
        if all(p.get("path") and str((p.get("extensions") or {}).get("code", "")) == "not_found" for p in problems):
            return Answer({}, problems)  # e.g. `dossier(number:)` of a dossier DS no longer has
        raise errors.ds_query_error(message, code)
    if not isinstance(data, dict):
        raise errors.ds_bad_response(f"HTTP {status} sans données")
    return Answer(data, problems)


def rate_limit_wait(reset: str | None, retry_after: str | None, now: float | None = None, *, default: float = 60.0) -> float:
    """Seconds to wait after a 429: until `RateLimit-Reset` (epoch seconds), else
    `Retry-After` (seconds), else `default` (a minute: the GraphQL API's window)."""
    now = time.time() if now is None else now
    for value, absolute in ((reset, True), (retry_after, False)):
        try:
            seconds = float(value or "")
        except ValueError:
            continue
        return min(max(1.0, seconds - now if absolute else seconds), 120.0)
    return default
