#!/usr/bin/env python3
"""Tests of purser_client against a real purserd.

Each test starts its own purserd on a fresh data directory with ephemeral
ports and stops it afterwards. The purserd binary is `--purserd PATH`, else
the PURSERD environment variable, else build/bin/purserd under the repository
root.

    python3 clients/python/test_client.py [--purserd build/bin/purserd] [-v]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal
from typing import Callable

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from purser_client import (  # noqa: E402  (after the path is set)
    AccountFrozen,
    BudgetExceeded,
    DailyCapExceeded,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    PurserClient,
    RateLimited,
    ReservationNotPending,
    TransportError,
    Unauthenticated,
    Usage,
    micros_to_usd,
    usd_to_micros,
)

PURSERD = os.environ.get(
    "PURSERD", str(HERE.parent.parent / "build" / "bin" / "purserd"))
STARTUP_TIMEOUT_S = 30.0

# Fast retries, so tests that make the client retry stay quick.
FAST_RETRIES = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


class Purserd:
    """One purserd process on a temporary data directory, ephemeral ports."""

    def __init__(self, binary: str) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="purser-pytest-")
        stdout_path = self.data_dir + ".stdout"
        self._stdout = open(stdout_path, "w+b")
        self._stderr = open(self.data_dir + ".stderr", "w+b")
        self.process = subprocess.Popen(
            [binary, "--data-dir", self.data_dir,
             "--rpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
            stdout=self._stdout, stderr=self._stderr)
        first_line = self._wait_for_first_line(stdout_path)
        http_port = re.search(r"\bhttp_port=(\d+)", first_line)
        rpc_port = re.search(r"(?<![\w])port=(\d+)", first_line)
        if not http_port or not rpc_port:
            self.stop()
            raise RuntimeError(f"no ports in purserd's first line: {first_line!r}")
        self.http_port = int(http_port.group(1))
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.admin_key = self._wait_for_admin_key()

    def _wait_for_first_line(self, stdout_path: str) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(stdout_path, "rb") as stdout:
                text = stdout.read().decode("utf-8", "replace")
            if "\n" in text:
                return text.split("\n", 1)[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"purserd did not start; stderr: {self._stderr_text()}")

    def _wait_for_admin_key(self) -> str:
        key_path = os.path.join(self.data_dir, "admin.key")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if os.path.exists(key_path):
                with open(key_path) as key_file:
                    key = key_file.read().strip()
                if key:
                    return key
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("purserd wrote no admin.key")

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; removes the data directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stdout.close()
        self._stderr.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        for suffix in (".stdout", ".stderr"):
            try:
                os.remove(self.data_dir + suffix)
            except FileNotFoundError:
                pass


# What the proxy does with the request on its n-th connection (0-based).
FORWARD = "forward"
DROP_ANSWER = "drop_answer"  # forward, wait for the answer, then hang up
ANSWER_503 = "answer_503"    # answer 503 Retry-After: 0 without forwarding


class FlakyProxy:
    """A one-request-per-connection HTTP proxy in front of purserd that can
    lose answers, to show what the client's retries do.

    `policy(n)` picks the action for the n-th connection. DROP_ANSWER lets
    purserd apply the request and then closes the client's connection without
    a byte, exactly what a network failure after the commit looks like.
    `requests` records every request received, in order.
    """

    def __init__(self, upstream_port: int, policy: Callable[[int], str]) -> None:
        self._upstream_port = upstream_port
        self._policy = policy
        self._lock = threading.Lock()
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                index = len(self.requests)
                self.requests.append(b"")
            threading.Thread(target=self._handle, args=(connection, index),
                             daemon=True).start()

    def _handle(self, connection: socket.socket, index: int) -> None:
        with connection:
            request = _read_http_message(connection)
            with self._lock:
                self.requests[index] = request
            action = self._policy(index)
            if action == ANSWER_503:
                body = b'{"error":{"code":"unavailable","message":"proxy test"}}'
                connection.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\n"
                    b"Content-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                    + body)
                return
            with socket.create_connection(("127.0.0.1", self._upstream_port)) as upstream:
                upstream.sendall(request)
                answer = _read_http_message(upstream)
            if action == FORWARD:
                connection.sendall(answer)

    def bodies(self) -> list[bytes]:
        """The bodies of the requests received, in order."""
        with self._lock:
            return [request.split(b"\r\n\r\n", 1)[1] for request in self.requests]


def _read_http_message(sock: socket.socket) -> bytes:
    """Reads one HTTP/1.1 message framed by Content-Length (what the client
    and purserd send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    remaining = (int(length.group(1)) if length else 0) - len(body)
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            break
        body += chunk
        remaining -= len(chunk)
    return head + b"\r\n\r\n" + body


class MoneyHelpersTest(unittest.TestCase):
    """The USD helpers convert exactly and refuse floats."""

    def test_converts_decimal_text_exactly(self) -> None:
        self.assertEqual(usd_to_micros("12.34"), 12_340_000)
        self.assertEqual(usd_to_micros(Decimal("0.000001")), 1)
        self.assertEqual(usd_to_micros(3), 3_000_000)
        self.assertEqual(micros_to_usd(1_234_567), Decimal("1.234567"))

    def test_refuses_floats_and_sub_micro_amounts(self) -> None:
        with self.assertRaises(TypeError):
            usd_to_micros(0.1)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            usd_to_micros("0.0000001")

    def test_money_parameters_must_be_int_micros(self) -> None:
        client = PurserClient("http://127.0.0.1:1", "unused")
        with self.assertRaises(TypeError):
            client.reserve("a", amount_micros=1.5)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            client.deposit("a", "100")  # type: ignore[arg-type]


class TransportFailureTest(unittest.TestCase):
    """A server that never answers ends in TransportError after the retries."""

    def test_refused_connections_raise_transport_error(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as placeholder:
            port = placeholder.getsockname()[1]
        client = PurserClient(f"http://127.0.0.1:{port}", "unused",
                              max_retries=2, **FAST_RETRIES)
        with self.assertRaises(TransportError) as raised:
            client.stats()
        self.assertIn("after 3 attempts", str(raised.exception))
        self.assertIsInstance(raised.exception.__cause__, ConnectionRefusedError)


class PurserClientTest(unittest.TestCase):
    """Behaviour of the client against a real purserd."""

    ORG, TEAM, AGENT = "org", "team", "agent-7"
    FUNDS_MICROS = usd_to_micros("100")

    def setUp(self) -> None:
        self.server = Purserd(PURSERD)
        self.proxies: list[FlakyProxy] = []
        self.client = PurserClient(self.server.url, self.server.admin_key,
                                   timeout=10, **FAST_RETRIES)
        self.client.create_account(self.ORG, kind="org", wallet=True, name="Org")
        self.client.create_account(self.TEAM, kind="team", parent=self.ORG)
        self.client.create_account(self.AGENT, kind="agent", parent=self.TEAM)
        self.client.deposit(self.ORG, self.FUNDS_MICROS, reference="test funds")

    def tearDown(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        self.server.stop()

    def proxied_client(self, policy: Callable[[int], str],
                       **options: object) -> tuple[PurserClient, FlakyProxy]:
        proxy = FlakyProxy(self.server.http_port, policy)
        self.proxies.append(proxy)
        return PurserClient(proxy.url, self.server.admin_key, timeout=10,
                            **{**FAST_RETRIES, **options}), proxy

    def balance(self) -> dict:
        return self.client.get_balance(self.AGENT)

    # ---- accounts -----------------------------------------------------

    def test_account_tree_and_wallet_are_created(self) -> None:
        agent = self.client.get_account(self.AGENT)
        self.assertEqual(agent["parent"], self.TEAM)
        self.assertEqual(agent["kind"], "agent")
        self.assertFalse(agent["wallet"])
        children = self.client.list_children(self.ORG)
        self.assertEqual([child["id"] for child in children], [self.TEAM])
        balance = self.balance()
        self.assertEqual(balance["funding_account"], self.ORG)
        self.assertEqual(balance["balance_micros"], self.FUNDS_MICROS)
        self.assertEqual(balance["held_micros"], 0)
        # Creating the same account again is idempotent.
        again = self.client.create_account(self.AGENT, kind="agent",
                                           parent=self.TEAM)
        self.assertEqual(again["id"], self.AGENT)

    def test_unknown_account_raises_not_found(self) -> None:
        with self.assertRaises(NotFound) as raised:
            self.client.get_balance("nobody")
        self.assertEqual(raised.exception.status, 404)

    # ---- the reservation context manager ----------------------------------

    def test_settle_in_block_charges_exactly_the_settled_cost(self) -> None:
        before = self.balance()
        with self.client.reservation(self.AGENT, estimate_micros=2_000_000,
                                     run_id="run-1", action="chat") as r:
            during = self.balance()
            self.assertEqual(r.amount_micros, 2_000_000)
            self.assertEqual(during["own_held_micros"], 2_000_000)
            self.assertEqual(during["available_micros"],
                             before["available_micros"] - 2_000_000)
            result = r.settle(cost_micros=1_234_567, outcome="success")
        self.assertEqual(result["cost_micros"], 1_234_567)
        self.assertEqual(result["released_micros"], 2_000_000 - 1_234_567)
        after = self.balance()
        self.assertEqual(after["balance_micros"],
                         before["balance_micros"] - 1_234_567)
        self.assertEqual(after["held_micros"], 0)
        self.assertEqual(after["spent_total_micros"],
                         before["spent_total_micros"] + 1_234_567)
        stored = self.client.get_reservation(r.reservation_id)
        self.assertEqual(stored["status"], "settled")
        self.assertEqual(stored["cost_micros"], 1_234_567)
        self.assertEqual(self.client.spend(self.AGENT)["total_micros"], 1_234_567)

    def test_settle_with_usage_is_priced_by_the_server(self) -> None:
        self.client.set_price("test-model", input_per_mtok_micros=1_000_000,
                              output_per_mtok_micros=2_000_000)
        with self.client.reservation(self.AGENT, model="test-model",
                                     input_tokens=1000,
                                     max_output_tokens=1000) as r:
            self.assertEqual(r.amount_micros, 1000 + 2000)  # the estimate
            result = r.settle(usage=Usage(input_tokens=1000, output_tokens=500))
        self.assertEqual(result["cost_micros"], 1000 + 1000)
        self.assertEqual(self.balance()["spent_total_micros"], 2000)
        by_model = self.client.spend(self.AGENT, group_by="model")["groups"]
        self.assertEqual([(g["key"], g["cost_micros"], g["input_tokens"],
                           g["output_tokens"]) for g in by_model],
                         [("test-model", 2000, 1000, 500)])

    def test_exception_in_block_voids_and_reraises(self) -> None:
        before = self.balance()
        with self.assertRaisesRegex(ValueError, "model call failed"):
            with self.client.reservation(self.AGENT,
                                         estimate_micros=3_000_000) as r:
                self.assertEqual(self.balance()["own_held_micros"], 3_000_000)
                raise ValueError("model call failed")
        self.assertEqual(r.status, "voided")
        self.assertEqual(r.void_result, {"released_micros": 3_000_000})
        self.assertEqual(self.client.get_reservation(r.reservation_id)["status"],
                         "voided")
        after = self.balance()
        self.assertEqual(after["held_micros"], 0)
        self.assertEqual(after["own_held_micros"], 0)
        self.assertEqual(after["available_micros"], before["available_micros"])
        self.assertEqual(after["spent_total_micros"], before["spent_total_micros"])

    def test_block_ending_without_settle_voids(self) -> None:
        with self.client.reservation(self.AGENT, estimate_micros=500_000) as r:
            pass
        self.assertEqual(self.client.get_reservation(r.reservation_id)["status"],
                         "voided")
        self.assertEqual(self.balance()["held_micros"], 0)

    def test_settled_reservation_is_not_voided_by_a_later_exception(self) -> None:
        with self.assertRaises(KeyError):
            with self.client.reservation(self.AGENT, estimate_micros=10_000) as r:
                r.settle(cost_micros=7_000)
                raise KeyError("after the settle")
        stored = self.client.get_reservation(r.reservation_id)
        self.assertEqual((stored["status"], stored["cost_micros"]),
                         ("settled", 7_000))

    def test_reserve_over_daily_cap_raises_daily_cap_exceeded(self) -> None:
        self.client.set_caps(self.TEAM, daily_limit_micros=1_000_000)
        with self.assertRaises(DailyCapExceeded) as raised:
            with self.client.reservation(self.AGENT, estimate_micros=1_000_001):
                self.fail("the block must not run when the reserve is refused")
        error = raised.exception
        self.assertIsInstance(error, BudgetExceeded)
        self.assertEqual((error.status, error.code),
                         (402, "daily_cap_exceeded"))
        self.assertEqual(error.account, self.TEAM)
        self.assertEqual(error.limit_micros, 1_000_000)
        self.assertEqual(self.client.list_reservations(
            self.AGENT, status="pending"), [])
        # Exactly the cap still fits.
        with self.client.reservation(self.AGENT, estimate_micros=1_000_000) as r:
            r.settle(cost_micros=1_000_000)

    def test_reserve_beyond_the_wallet_raises_insufficient_funds(self) -> None:
        with self.assertRaises(InsufficientFunds) as raised:
            self.client.reserve(self.AGENT, amount_micros=self.FUNDS_MICROS + 1)
        self.assertEqual(raised.exception.account, self.ORG)
        self.assertEqual(raised.exception.available_micros, self.FUNDS_MICROS)

    def test_frozen_account_refuses_with_account_frozen(self) -> None:
        self.client.freeze(self.TEAM, "test")
        with self.assertRaises(AccountFrozen):
            self.client.reserve(self.AGENT, amount_micros=1)
        self.client.unfreeze(self.TEAM)
        self.client.reserve(self.AGENT, amount_micros=1)

    # ---- idempotency and retries ------------------------------------------

    def test_same_reservation_id_returns_the_original_result(self) -> None:
        first = self.client.reserve(self.AGENT, amount_micros=40_000,
                                    reservation_id="fixed-id")
        second = self.client.reserve(self.AGENT, amount_micros=40_000,
                                     reservation_id="fixed-id")
        self.assertEqual(first, second)  # the same seq: one event
        self.assertEqual(self.balance()["own_held_micros"], 40_000)
        with self.assertRaises(IdempotencyConflict):
            self.client.reserve(self.AGENT, amount_micros=40_001,
                                reservation_id="fixed-id")
        settled = self.client.settle("fixed-id", cost_micros=30_000)
        self.assertEqual(self.client.settle("fixed-id", cost_micros=30_000),
                         settled)
        with self.assertRaises(ReservationNotPending):
            self.client.settle("fixed-id", cost_micros=30_001)
        self.assertEqual(self.balance()["spent_total_micros"], 30_000)

    def test_lost_answers_are_retried_with_the_same_ids_without_double_charge(
            self) -> None:
        # Every first attempt reaches purserd, which applies it, but its
        # answer is lost; the client must retry and get the original result.
        client, proxy = self.proxied_client(
            lambda n: DROP_ANSWER if n % 2 == 0 else FORWARD)
        before = self.balance()
        with client.reservation(self.AGENT, estimate_micros=900_000) as r:
            self.assertEqual(self.balance()["own_held_micros"], 900_000)
            r.settle(cost_micros=654_321)
        usage = client.record_usage(self.AGENT, cost_micros=1_111,
                                    action="embed")
        self.assertEqual(usage["cost_micros"], 1_111)
        client.deposit(self.ORG, 5_000_000)

        bodies = proxy.bodies()
        self.assertEqual(len(bodies), 8)  # 4 calls, each sent twice
        for first, retry in zip(bodies[0::2], bodies[1::2]):
            self.assertEqual(first, retry)  # same id, same payload
        after = self.balance()
        self.assertEqual(after["spent_total_micros"],
                         before["spent_total_micros"] + 654_321 + 1_111)
        self.assertEqual(after["balance_micros"], before["balance_micros"]
                         - 654_321 - 1_111 + 5_000_000)
        self.assertEqual(after["held_micros"], 0)
        reservations = self.client.list_reservations(self.AGENT, status="all")
        self.assertEqual([(x["reservation_id"], x["status"]) for x in reservations],
                         [(r.reservation_id, "settled")])

    def test_503_with_retry_after_is_retried(self) -> None:
        client, proxy = self.proxied_client(
            lambda n: ANSWER_503 if n == 0 else FORWARD)
        self.assertEqual(client.get_balance(self.AGENT)["balance_micros"],
                         self.FUNDS_MICROS)
        self.assertEqual(len(proxy.bodies()), 2)

    def test_other_4xx_are_not_retried(self) -> None:
        client, proxy = self.proxied_client(lambda n: FORWARD)
        self.client.set_caps(self.AGENT, daily_limit_micros=10)
        with self.assertRaises(DailyCapExceeded):
            client.reserve(self.AGENT, amount_micros=11)
        self.assertEqual(len(proxy.bodies()), 1)

    def test_rate_limit_beyond_max_retry_after_is_raised(self) -> None:
        client, proxy = self.proxied_client(lambda n: FORWARD,
                                            max_retry_after_s=0)
        self.client.set_caps(self.AGENT, max_calls_per_minute=1)
        client.reserve(self.AGENT, amount_micros=1)
        with self.assertRaises(RateLimited) as raised:
            client.reserve(self.AGENT, amount_micros=1)
        self.assertEqual(raised.exception.account, self.AGENT)
        self.assertGreater(raised.exception.retry_after_s, 0)
        self.assertEqual(len(proxy.bodies()), 2)  # no retry of the refusal

    def test_bad_key_raises_unauthenticated(self) -> None:
        client = PurserClient(self.server.url, "pk_not_a_key")
        with self.assertRaises(Unauthenticated) as raised:
            client.get_balance(self.AGENT)
        self.assertEqual((raised.exception.status, raised.exception.code),
                         (401, "unauthenticated"))

    # ---- reads ----------------------------------------------------------

    def test_reports_count_the_settled_spend(self) -> None:
        with self.client.reservation(self.AGENT, estimate_micros=300_000,
                                     action="summarize") as r:
            r.settle(cost_micros=250_000)
        stats = self.client.stats()
        self.assertEqual(stats["spend_today_micros"], 250_000)
        self.assertEqual(stats["reservations_pending"], 0)
        trends = self.client.trends(self.ORG, days=7)
        self.assertEqual(trends["data"][-1]["total_cost_micros"], 250_000)
        self.assertEqual(trends["data"][-1]["cost_by_action"], {"summarize": 250_000})
        burn = self.client.burn_rate(self.TEAM, window_s=300)
        self.assertEqual(burn["spend_micros"], 250_000)
        leaders = self.client.leaderboard(metric="spend", period="7d",
                                          parent=self.ORG)
        self.assertIn({"account": self.AGENT, "value": 250_000,
                       "spend_micros": 250_000}, leaders)
        chargeback = self.client.chargeback(self.ORG, markup_pct=10)
        self.assertEqual(chargeback["lines"],
                         [{"account": self.TEAM, "cost_micros": 250_000,
                           "calls": 1}])
        self.assertEqual(chargeback["total_micros"], 275_000)
        self.client.set_caps(self.AGENT, daily_limit_micros=400_000)
        alerts = self.client.alerts(account=self.AGENT,
                                    alert_type="budget_threshold")
        self.assertEqual(sorted(a["threshold_pct"] for a in alerts), [50])
        self.client.set_caps(self.AGENT, daily_limit_micros=250_000)
        oldest = self.client.alerts(account=self.AGENT, order="oldest")
        newest = self.client.alert_page(account=self.AGENT, order="newest")
        self.assertEqual([a["threshold_pct"] for a in oldest], [50, 50, 75, 90, 100])
        self.assertEqual(newest["alerts"], oldest[::-1])
        self.assertNotIn("truncated", newest)
        with self.assertRaises(InvalidArgument):
            self.client.alerts(order="sideways")


def main() -> None:
    global PURSERD
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--purserd", default=PURSERD)
    options, rest = parser.parse_known_args()
    PURSERD = os.path.abspath(options.purserd)
    if not os.access(PURSERD, os.X_OK):
        sys.exit(f"purserd not found at {PURSERD} (use --purserd or PURSERD)")
    unittest.main(argv=[sys.argv[0], *rest])


if __name__ == "__main__":
    main()
