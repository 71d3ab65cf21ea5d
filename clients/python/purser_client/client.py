"""PurserClient: Purser's HTTP/JSON API (API.md, version 1) from Python.

Money is integer micro-USD in and out (`amount_micros`, `cost_micros`); see
`purser_client.money` for exact conversions from USD. Answers are the API's
JSON objects as dicts, with JSON numbers that have a fraction parsed as
`Decimal`, so no float ever carries money.

Retries. A request that fails in transit (connection refused or reset,
timeout), or is answered 5xx (but 501), or 429 with `Retry-After`, is sent
again, byte for byte, after a backoff or the server's `Retry-After`. That is
safe because every write carries a client id that the server deduplicates on:
a repeat with the same id and payload answers the original result instead of
acting twice. Methods that take an optional id (`reservation_id`, `usage_id`,
`transfer_id`, a deposit's `idempotency_key`) make one uuid4 per call when
none is given, so retries within a call are safe; pass your own id to make a
retry after a crash of your process safe too. Any other 4xx is raised at
once.
"""

from __future__ import annotations

import datetime
import http.client
import json
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Mapping

from .errors import PurserError, TransportError, error_from_response

Json = dict[str, Any]
Date = datetime.date | str


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token counts of one model call; the server prices them.

    Token classes are disjoint: `input_tokens` counts uncached input only.
    `model` may be left out when settling a `Reservation` opened with a model.
    """

    input_tokens: int
    output_tokens: int
    model: str | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def to_json(self) -> Json:
        """The API's `usage` object; zero optional classes are left out."""
        body: Json = {"input_tokens": self.input_tokens,
                      "output_tokens": self.output_tokens}
        if self.model is not None:
            body["model"] = self.model
        for name in ("cached_input_tokens", "cache_write_tokens",
                     "reasoning_tokens"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return body


UsageLike = Usage | Mapping[str, Any]


class PurserClient:
    """A client of one purserd over HTTP/JSON.

    Thread-safe: it keeps no connection between requests (each request opens
    its own), so one instance may be shared by threads.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        *,
        max_retries: int = 4,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        max_retry_after_s: float = 30.0,
    ) -> None:
        """Makes a client; nothing is sent until the first call.

        Args:
          base_url: e.g. "http://127.0.0.1:8480" (http or https; a path
            prefix is kept).
          api_key: sent as `Authorization: Bearer <api_key>`.
          timeout: seconds for each attempt's connect and each read.
            Default: 10.
          max_retries: attempts after the first for a retryable failure.
            Default: 4.
          backoff_base_s: the first backoff; it doubles per attempt, with
            jitter, up to `backoff_max_s`. Default: 0.2 and 5.
          max_retry_after_s: the longest server `Retry-After` the client will
            sleep through; a longer one is raised at once (e.g. `RateLimited`
            with `retry_after_s`) so the caller decides. Default: 30.
        """
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port]: {base_url!r}")
        self._connection_class = (http.client.HTTPSConnection
                                  if parsed.scheme == "https"
                                  else http.client.HTTPConnection)
        self._host = parsed.hostname
        self._port = parsed.port
        self._path_prefix = parsed.path.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._max_retry_after_s = max_retry_after_s

    # ---- accounts and budgets -------------------------------------------

    def create_account(
        self,
        account_id: str,
        *,
        kind: str,
        parent: str | None = None,
        name: str | None = None,
        wallet: bool = False,
        indexed_tag_keys: list[str] | None = None,
    ) -> Json:
        """POST /v1/accounts; `kind` is org, team, agent or workflow.

        Repeating a creation with the same payload returns the account (the
        id is the idempotency key); a different payload raises AlreadyExists.
        """
        body = _without_none({
            "id": account_id, "parent": parent, "kind": kind, "name": name,
            "wallet": wallet, "indexed_tag_keys": indexed_tag_keys})
        return self._request("POST", "/v1/accounts", body)

    def get_account(self, account_id: str) -> Json:
        """GET /v1/accounts/{id}: the account with its caps and balance."""
        return self._request("GET", f"/v1/accounts/{_segment(account_id)}")

    def list_children(self, parent: str) -> list[Json]:
        """GET /v1/accounts?parent=: the direct children of `parent`."""
        return self._request("GET", "/v1/accounts",
                             query={"parent": parent})["accounts"]

    def get_balance(self, account_id: str) -> Json:
        """GET /v1/accounts/{id}/balance: funds, holds, spend and headroom."""
        return self._request(
            "GET", f"/v1/accounts/{_segment(account_id)}/balance")

    def set_caps(self, account_id: str, **caps: Any) -> Json:
        """PUT /v1/accounts/{id}/caps with exactly the caps given.

        A cap left out keeps its value; a cap given as None is removed. The
        names are API.md's (`daily_limit_micros=5_000_000`, `max_inflight=4`,
        `max_calls_per_minute=None`, ...); the server refuses unknown ones.
        """
        for name, value in caps.items():
            if name.endswith("_micros") and value is not None:
                _check_micros(name, value)
        return self._request(
            "PUT", f"/v1/accounts/{_segment(account_id)}/caps", caps)

    def deposit(
        self,
        account_id: str,
        amount_micros: int,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """POST /v1/accounts/{id}/deposits into the account's wallet.

        The `Idempotency-Key` header is `idempotency_key`, or a uuid4 made
        once for this call. Returns `{"balance_micros"}`.
        """
        _check_micros("amount_micros", amount_micros)
        body = _without_none(
            {"amount_micros": amount_micros, "reference": reference})
        key = idempotency_key or str(uuid.uuid4())
        return self._request(
            "POST", f"/v1/accounts/{_segment(account_id)}/deposits", body,
            headers={"Idempotency-Key": key})

    def transfer(
        self,
        from_account: str,
        to_account: str,
        amount_micros: int,
        *,
        transfer_id: str | None = None,
        reason: str | None = None,
    ) -> Json:
        """POST /v1/transfers between two wallets."""
        _check_micros("amount_micros", amount_micros)
        body = _without_none({
            "transfer_id": transfer_id or str(uuid.uuid4()),
            "from": from_account, "to": to_account,
            "amount_micros": amount_micros, "reason": reason})
        return self._request("POST", "/v1/transfers", body)

    def freeze(self, account_id: str, reason: str) -> Json:
        """POST /v1/accounts/{id}/freeze: refuses new spend in the subtree."""
        return self._request(
            "POST", f"/v1/accounts/{_segment(account_id)}/freeze",
            {"reason": reason})

    def unfreeze(self, account_id: str) -> Json:
        """POST /v1/accounts/{id}/unfreeze."""
        return self._request(
            "POST", f"/v1/accounts/{_segment(account_id)}/unfreeze", {})

    # ---- spending ---------------------------------------------------------

    def reserve(
        self,
        account: str,
        *,
        amount_micros: int | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        reservation_id: str | None = None,
        ttl_s: int | None = None,
        run_id: str | None = None,
        action: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Json:
        """POST /v1/reservations: holds `amount_micros`, or the server's
        estimate for `model`, `input_tokens` and `max_output_tokens`.

        Raises a `BudgetExceeded` subclass, `AccountFrozen`,
        `InflightLimitReached` or `RateLimited` when refused. Prefer
        `reservation()`, which also settles or voids.
        """
        body = _reserve_body(
            account, reservation_id or str(uuid.uuid4()), amount_micros,
            model, input_tokens, max_output_tokens, ttl_s, run_id, action, tags)
        return self._request("POST", "/v1/reservations", body)

    def reservation(
        self,
        account: str,
        *,
        estimate_micros: int | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        reservation_id: str | None = None,
        ttl_s: int | None = None,
        run_id: str | None = None,
        action: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Reservation:
        """A context manager that reserves on enter and settles or voids.

        Hold either `estimate_micros`, or the server's estimate for `model`
        with `input_tokens` and `max_output_tokens`. `model` alone, next to
        `estimate_micros`, is the default model of `settle(usage=...)`.

            with client.reservation("agent-7", estimate_micros=50_000,
                                    model="claude-sonnet-4") as r:
                reply = call_the_model()
                r.settle(usage=Usage(input_tokens=..., output_tokens=...))

        See `Reservation` for what happens when the block raises or ends
        without settling (the hold is voided).
        """
        reservation_id = reservation_id or str(uuid.uuid4())
        with_tokens = input_tokens is not None or max_output_tokens is not None
        body = _reserve_body(
            account, reservation_id, estimate_micros,
            model if with_tokens else None, input_tokens, max_output_tokens,
            ttl_s, run_id, action, tags)
        return Reservation(self, reservation_id, body, default_model=model)

    def settle(
        self,
        reservation_id: str,
        *,
        cost_micros: int | None = None,
        usage: UsageLike | None = None,
        action: str | None = None,
        waste: str | None = None,
        outcome: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Json:
        """POST /v1/reservations/{id}/settle with the actual cost or usage.

        Give exactly one of `cost_micros` (sent as `amount_micros`) and
        `usage` (priced by the server). `outcome` is "success" or "error".
        Returns `{"reservation_id","cost_micros","released_micros",
        "overrun_micros","late","seq"}`. Settling again with the same payload
        returns the first result; a voided reservation, or a different
        payload, raises ReservationNotPending.
        """
        body = _without_none({
            **_cost_or_usage(cost_micros, usage),
            "action": action, "waste": waste, "outcome": outcome,
            "tags": _tags(tags)})
        return self._request(
            "POST", f"/v1/reservations/{_segment(reservation_id)}/settle", body)

    def void(self, reservation_id: str, reason: str | None = None) -> Json:
        """POST /v1/reservations/{id}/void: releases the hold.

        Repeating it with the same reason returns `{"released_micros"}` again;
        another reason raises IdempotencyConflict, and a settled reservation
        ReservationNotPending.
        """
        return self._request(
            "POST", f"/v1/reservations/{_segment(reservation_id)}/void",
            _without_none({"reason": reason}))

    def extend(self, reservation_id: str, ttl_s: int) -> Json:
        """POST /v1/reservations/{id}/extend: expires `ttl_s` from now."""
        return self._request(
            "POST", f"/v1/reservations/{_segment(reservation_id)}/extend",
            {"ttl_s": ttl_s})

    def get_reservation(self, reservation_id: str) -> Json:
        """GET /v1/reservations/{id}; `status` is pending, settled, voided or
        expired."""
        return self._request(
            "GET", f"/v1/reservations/{_segment(reservation_id)}")

    def list_reservations(
        self,
        account: str,
        *,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        """GET /v1/reservations: the subtree's, oldest created first.

        `status` is pending (the server's default), settled, voided, expired
        or all.
        """
        query = {"account": account, "status": status, "limit": limit}
        return self._request("GET", "/v1/reservations",
                             query=query)["reservations"]

    def record_usage(
        self,
        account: str,
        *,
        cost_micros: int | None = None,
        usage: UsageLike | None = None,
        usage_id: str | None = None,
        action: str | None = None,
        waste: str | None = None,
        outcome: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: datetime.datetime | str | None = None,
    ) -> Json:
        """POST /v1/usage: charges spend that had no reservation.

        Give exactly one of `cost_micros` (sent as `amount_micros`) and
        `usage`. Refused only when frozen; past a cap or the funds it still
        records the spend and reports `overrun_micros`. `occurred_at`
        (within the last 35 days) imports history.
        """
        if isinstance(occurred_at, datetime.datetime):
            occurred_at = _rfc3339(occurred_at)
        body = _without_none({
            "usage_id": usage_id or str(uuid.uuid4()), "account": account,
            **_cost_or_usage(cost_micros, usage),
            "action": action, "waste": waste, "outcome": outcome,
            "run_id": run_id, "tags": _tags(tags), "occurred_at": occurred_at})
        return self._request("POST", "/v1/usage", body)

    # ---- prices -----------------------------------------------------------

    def set_price(
        self,
        model: str,
        *,
        input_per_mtok_micros: int,
        output_per_mtok_micros: int,
        cached_input_per_mtok_micros: int | None = None,
        cache_write_per_mtok_micros: int | None = None,
        reasoning_per_mtok_micros: int | None = None,
    ) -> Json:
        """PUT /v1/prices/{model}: micro-USD per million tokens of each class."""
        body = _without_none({
            "input_per_mtok_micros": input_per_mtok_micros,
            "output_per_mtok_micros": output_per_mtok_micros,
            "cached_input_per_mtok_micros": cached_input_per_mtok_micros,
            "cache_write_per_mtok_micros": cache_write_per_mtok_micros,
            "reasoning_per_mtok_micros": reasoning_per_mtok_micros})
        for name, value in body.items():
            _check_micros(name, value)
        return self._request("PUT", f"/v1/prices/{_segment(model)}", body)

    def estimate_cost(self, usage: UsageLike) -> Json:
        """POST /v1/estimate: what `usage` would cost now (`cost_micros`)."""
        return self._request("POST", "/v1/estimate", _usage_json(usage))

    # ---- analytics --------------------------------------------------------

    def spend(
        self,
        account: str,
        *,
        from_date: Date | None = None,
        to_date: Date | None = None,
        group_by: str | None = None,
    ) -> Json:
        """GET /v1/accounts/{id}/spend over inclusive UTC dates.

        `group_by` is model, action, waste, outcome, child, day, run or
        tag:KEY; without it `groups` is empty and only the totals count.
        """
        query = {"from": from_date, "to": to_date, "group_by": group_by}
        return self._request(
            "GET", f"/v1/accounts/{_segment(account)}/spend", query=query)

    def trends(self, account: str, *, days: int | None = None) -> Json:
        """GET /v1/accounts/{id}/trends?days=7|30|90: one row per day."""
        return self._request(
            "GET", f"/v1/accounts/{_segment(account)}/trends",
            query={"days": days})

    def burn_rate(self, account: str, *, window_s: int | None = None) -> Json:
        """GET /v1/accounts/{id}/burn-rate (`window_s` a multiple of 60)."""
        return self._request(
            "GET", f"/v1/accounts/{_segment(account)}/burn-rate",
            query={"window_s": window_s})

    def alerts(
        self,
        *,
        account: str | None = None,
        since: str | None = None,
        alert_type: str | None = None,
        order: str | None = None,
    ) -> list[Json]:
        """GET /v1/alerts; `alert_type` is budget_threshold, overrun, anomaly
        or runaway; `order` oldest (the default) or newest. A list holds at
        most 10,000: past them, oldest keeps the oldest and newest the newest
        (`alert_page` says whether it was cut)."""
        return self.alert_page(account=account, since=since,
                               alert_type=alert_type, order=order)["alerts"]

    def alert_page(
        self,
        *,
        account: str | None = None,
        since: str | None = None,
        alert_type: str | None = None,
        order: str | None = None,
    ) -> Json:
        """GET /v1/alerts whole: `{"alerts": [...]}`, with `"truncated": true`
        when more alerts matched than it lists."""
        query = {"account": account, "since": since, "type": alert_type,
                 "order": order}
        return self._request("GET", "/v1/alerts", query=query)

    def leaderboard(
        self,
        *,
        metric: str | None = None,
        period: str | None = None,
        parent: str | None = None,
    ) -> list[Json]:
        """GET /v1/leaderboard (metric spend|efficiency|waste, period 7d|30d):
        the entries, best first."""
        query = {"metric": metric, "period": period, "parent": parent}
        return self._request("GET", "/v1/leaderboard", query=query)["entries"]

    def stats(self) -> Json:
        """GET /v1/stats: counts and today's and the month's spend."""
        return self._request("GET", "/v1/stats")

    def chargeback(
        self,
        parent: str,
        *,
        month: str | None = None,
        markup_pct: int | None = None,
    ) -> Json:
        """GET /v1/chargeback for `month` ("YYYY-MM"; default this month)."""
        query = {"parent": parent, "month": month, "markup_pct": markup_pct}
        return self._request("GET", "/v1/chargeback", query=query)

    def health(self) -> Json:
        """GET /healthz: `{"status": "ok"}` when serving."""
        return self._request("GET", "/healthz")

    # ---- transport --------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Sends one request, retrying transient failures with the same bytes.

        Returns the decoded JSON answer (None for 204); raises the typed
        `PurserError` for an error answer and `TransportError` when every
        attempt failed in transit.
        """
        target = self._path_prefix + path + _query_string(query)
        payload = None if body is None else json.dumps(
            body, separators=(",", ":")).encode()
        all_headers = {"Authorization": f"Bearer {self._api_key}",
                       "Accept": "application/json",
                       "User-Agent": "purser-python/1"}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})

        attempt = 0
        while True:
            last_attempt = attempt == self._max_retries
            try:
                status, retry_after_s, answer = self._send_once(
                    method, target, payload, all_headers)
            except (ConnectionError, TimeoutError,
                    http.client.HTTPException) as transport_error:
                if last_attempt:
                    raise TransportError(
                        f"{method} {path}: {type(transport_error).__name__}: "
                        f"{transport_error} (after {attempt + 1} attempts)"
                    ) from transport_error
                delay_s = self._backoff_s(attempt)
            else:
                if 200 <= status < 300:
                    return (json.loads(answer, parse_float=Decimal)
                            if answer else None)
                error = error_from_response(status, answer, retry_after_s)
                delay_s = self._retry_delay_s(status, retry_after_s, attempt)
                if delay_s is None or last_attempt:
                    raise error
            time.sleep(delay_s)
            attempt += 1

    def _send_once(
        self,
        method: str,
        target: str,
        payload: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, int | None, bytes]:
        """One attempt on a fresh connection: (status, Retry-After s, body)."""
        connection = self._connection_class(
            self._host, self._port, timeout=self._timeout)
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            return (response.status,
                    _retry_after_s(response.getheader("Retry-After")), answer)
        finally:
            connection.close()

    def _retry_delay_s(
        self, status: int, retry_after_s: int | None, attempt: int
    ) -> float | None:
        """How long to wait before retrying an error answer, or None to raise.

        429 is retried only with a `Retry-After` (API.md always sends one with
        `rate_limited`); 5xx always, except 501, which no retry can change. A
        `Retry-After` longer than `max_retry_after_s` is raised instead.
        """
        if status == 429 or (status >= 500 and status != 501):
            if retry_after_s is not None:
                if retry_after_s > self._max_retry_after_s:
                    return None
                return float(retry_after_s)
            return None if status == 429 else self._backoff_s(attempt)
        return None

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        ceiling_s = min(self._backoff_max_s, self._backoff_base_s * 2 ** attempt)
        return ceiling_s / 2 + random.uniform(0, ceiling_s / 2)


class Reservation:
    """A budget hold that is settled or voided exactly once; made by
    `PurserClient.reservation()` and used as a context manager.

    - On enter it reserves, with a reservation id made once (uuid4 unless
      given), so a retried reserve never holds twice. A refusal raises the
      typed error (`DailyCapExceeded`, `InsufficientFunds`, `AccountFrozen`,
      ...) and the block does not run.
    - `settle()` records the actual cost or usage; call it once, in the block.
    - If the block raises, the reservation is voided (unless already settled
      or voided) and the original exception propagates. If the void fails too,
      the failure is added to that exception as a note, never raised over it.
    - If the block ends without `settle()` or `void()`, the reservation is
      voided: without a cost there is nothing true to record, and holding the
      money until expiry would only block other spend. A failing void is
      raised then.

    Not thread-safe: one reservation belongs to one flow of control.
    """

    def __init__(
        self,
        client: PurserClient,
        reservation_id: str,
        reserve_body: Json,
        default_model: str | None,
    ) -> None:
        self._client = client
        self._reserve_body = reserve_body
        self._default_model = default_model
        self.reservation_id = reservation_id
        self.account: str = reserve_body["account"]
        self.status = "new"  # then pending, settled or voided
        self.reserve_result: Json | None = None
        self.settle_result: Json | None = None
        self.void_result: Json | None = None

    @property
    def amount_micros(self) -> int | None:
        """The amount held, once reserved."""
        return (self.reserve_result or {}).get("amount_micros")

    @property
    def expires_at(self) -> str | None:
        """When the hold expires (RFC 3339), once reserved."""
        return (self.reserve_result or {}).get("expires_at")

    @property
    def advice(self) -> str | None:
        """"degrade" when the server advises a cheaper model, else None."""
        return (self.reserve_result or {}).get("advice")

    def __enter__(self) -> Reservation:
        if self.status != "new":
            raise RuntimeError(f"reservation {self.reservation_id} was entered already")
        self.reserve_result = self._client._request(
            "POST", "/v1/reservations", self._reserve_body)
        self.status = "pending"
        return self

    def settle(
        self,
        *,
        cost_micros: int | None = None,
        usage: UsageLike | None = None,
        action: str | None = None,
        waste: str | None = None,
        outcome: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Json:
        """Settles with `cost_micros` or `usage` (see `PurserClient.settle`).

        A `usage` without a model takes the model this reservation was opened
        with.
        """
        if usage is not None and self._default_model is not None:
            usage = _usage_json(usage)
            usage.setdefault("model", self._default_model)
        self.settle_result = self._client.settle(
            self.reservation_id, cost_micros=cost_micros, usage=usage,
            action=action, waste=waste, outcome=outcome, tags=tags)
        self.status = "settled"
        return self.settle_result

    def void(self, reason: str | None = None) -> Json:
        """Releases the hold now; the block's end then does nothing more."""
        self.void_result = self._client.void(self.reservation_id, reason)
        self.status = "voided"
        return self.void_result

    def extend(self, ttl_s: int) -> Json:
        """Moves the expiry to `ttl_s` seconds from now."""
        return self._client.extend(self.reservation_id, ttl_s)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self.status != "pending":
            return False
        if exc is None:
            self.void("the block ended without settle")
            return False
        try:
            self.void(f"the block raised {exc_type.__name__}")
        except PurserError as void_error:
            exc.add_note(
                f"purser: voiding reservation {self.reservation_id} "
                f"failed too: {void_error}")
        return False


# ---- request building -------------------------------------------------------


def _reserve_body(
    account: str,
    reservation_id: str,
    amount_micros: int | None,
    model: str | None,
    input_tokens: int | None,
    max_output_tokens: int | None,
    ttl_s: int | None,
    run_id: str | None,
    action: str | None,
    tags: Mapping[str, str] | None,
) -> Json:
    """The body of POST /v1/reservations, with exactly one of an amount and an
    estimate."""
    estimate = None
    if model is not None:
        if input_tokens is None or max_output_tokens is None:
            raise ValueError(
                "an estimate needs model, input_tokens and max_output_tokens")
        estimate = {"model": model, "input_tokens": input_tokens,
                    "max_output_tokens": max_output_tokens}
    if (amount_micros is None) == (estimate is None):
        raise ValueError(
            "give exactly one of an amount in micro-USD and a model estimate")
    if amount_micros is not None:
        _check_micros("amount_micros", amount_micros)
    return _without_none({
        "reservation_id": reservation_id, "account": account,
        "amount_micros": amount_micros, "estimate": estimate, "ttl_s": ttl_s,
        "run_id": run_id, "action": action, "tags": _tags(tags)})


def _cost_or_usage(cost_micros: int | None, usage: UsageLike | None) -> Json:
    """`{"amount_micros"}` or `{"usage"}`, refusing both or neither."""
    if (cost_micros is None) == (usage is None):
        raise ValueError("give exactly one of cost_micros and usage")
    if cost_micros is not None:
        _check_micros("cost_micros", cost_micros)
        return {"amount_micros": cost_micros}
    return {"usage": _usage_json(usage)}


def _usage_json(usage: UsageLike) -> Json:
    return usage.to_json() if isinstance(usage, Usage) else dict(usage)


def _check_micros(name: str, value: Any) -> None:
    """Money is a non-negative int of micro-USD: never a float, bool or str."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int of micro-USD, not {type(value).__name__} "
            "(see purser_client.usd_to_micros)")
    if value < 0:
        raise ValueError(f"{name} must not be negative: {value}")


def _tags(tags: Mapping[str, str] | None) -> Json | None:
    return None if tags is None else dict(tags)


def _without_none(fields: Json) -> Json:
    """Drops absent optional fields, so the server applies its defaults."""
    return {key: value for key, value in fields.items() if value is not None}


def _segment(value: str) -> str:
    """One path segment, escaped so an id can never change the path."""
    return urllib.parse.quote(value, safe="")


def _query_string(query: Mapping[str, Any] | None) -> str:
    pairs = {key: str(value) for key, value in (query or {}).items()
             if value is not None}
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _retry_after_s(header: str | None) -> int | None:
    """The `Retry-After` header in seconds (the only form purserd sends)."""
    try:
        return max(0, int(header)) if header is not None else None
    except ValueError:
        return None


def _rfc3339(moment: datetime.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("occurred_at must carry a time zone")
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")
