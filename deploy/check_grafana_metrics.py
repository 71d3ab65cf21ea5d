#!/usr/bin/env python3
"""Checks that the dashboard and the alerting rules use only metrics purserd serves.

usage: check_grafana_metrics.py PATH/TO/purserd [--dashboard FILE] [--rules FILE]

Starts the real purserd on a temporary data directory (ephemeral ports,
--metrics-public), makes a little traffic over HTTP so that the labelled
series exist (an account tree, a deposit, caps, reservations settled with
token usage, a refusal, a baseline, a webhook whose receiver is down), fetches
/metrics and collects every metric name served (with the _bucket, _sum and
_count series of histograms). Then it takes every PromQL expression of the
Grafana dashboard (panel targets and template variables) and of the
Prometheus rules, and fails, listing them, on:
  - a purser_* name that /metrics does not serve;
  - a label matcher on a label that the metric's series do not have, or an
    equality matcher on a value none of them has; a `by (...)` or
    `without (...)` label that none of the expression's series has;
  - a family that shared/API.md documents and /metrics does not serve.
It also checks the dashboard's structure: valid JSON, unique panel ids, panels
laid out on the 24-column grid without overlapping, every panel on the
${datasource} variable with at least one target, the account variable.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# The families shared/API.md ("Operations", GET /metrics) promises.
DOCUMENTED = [
    "purser_commands_total", "purser_command_duration_seconds", "purser_group_commit_size",
    "purser_fsync_duration_seconds", "purser_events_total", "purser_reservations_pending",
    "purser_spend_micro_usd_total", "purser_tokens_total", "purser_rejections_total",
    "purser_alerts_total", "purser_runs_active", "purser_webhook_deliveries_total",
    "purser_webhook_backlog", "purser_account_spend_today_micro_usd",
    "purser_account_budget_utilization_ratio", "purser_account_burn_rate_micro_usd_per_hour",
]


class CheckError(Exception):
    pass


# --------------------------------------------------------------- purserd

class Purserd:
    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.proc = None
        self.http_port = None
        self.key = None
        self.stderr_path = os.path.join(os.path.dirname(data_dir), "purserd.stderr")

    def start(self, timeout_s=60):
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--data-dir", self.data_dir, "--rpc", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--metrics-public", "--allow-private-webhooks",
             "--webhook-retry-base-ms", "200", "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        line = b""
        deadline = time.monotonic() + timeout_s
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        text = line.decode(errors="replace").splitlines()[0] if line else ""
        match = re.search(r"\bport=(\d+).*\bhttp_port=(\d+)", text)
        if not match:
            raise CheckError("purserd did not print its ports (got %r); stderr:\n%s"
                             % (text, self.read_stderr()))
        self.http_port = int(match.group(2))
        with open(os.path.join(self.data_dir, "admin.key")) as f:
            self.key = f.read().strip()

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise CheckError("purserd did not stop within 60 s of SIGTERM")

    def request(self, method, path, body=None, headers=None, auth=True):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if auth:
            req.add_header("Authorization", "Bearer " + self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def expect(self, want, method, path, body=None, headers=None):
        status, text = self.request(method, path, body, headers)
        if status not in want:
            raise CheckError("%s %s answered %d (wanted %s): %s" % (method, path, status, want, text))
        return text


def free_loopback_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_traffic(d):
    """Enough traffic for every labelled family to have series."""
    d.expect((201,), "POST", "/v1/accounts", {"id": "org", "kind": "org", "wallet": True})
    d.expect((201,), "POST", "/v1/accounts", {"id": "team", "parent": "org", "kind": "team",
                                              "wallet": False})
    d.expect((201,), "POST", "/v1/accounts", {"id": "agent", "parent": "team", "kind": "agent",
                                              "wallet": False})
    d.expect((201,), "POST", "/v1/accounts/org/deposits", {"amount_micros": 100_000_000},
             {"Idempotency-Key": "check-deposit-1"})
    d.expect((200,), "PUT", "/v1/accounts/team/caps",
             {"daily_limit_micros": 2_000_000, "monthly_limit_micros": 50_000_000,
              "hard_limit_micros": 90_000_000})
    d.expect((200,), "PUT", "/v1/accounts/team/baseline", {"micros_per_hour": 1000, "multiplier": 3})
    # A receiver that is down: deliveries are retried (backlog, attempts).
    d.expect((201,), "POST", "/v1/webhooks",
             {"url": "http://127.0.0.1:%d/hook" % free_loopback_port(),
              "events": ["budget_threshold", "overrun", "anomaly", "runaway"], "secret": "check"})
    for i in range(3):
        rid = "check-r%d" % i
        d.expect((201,), "POST", "/v1/reservations",
                 {"reservation_id": rid, "account": "agent", "run_id": "check-run",
                  "estimate": {"model": "claude-3-5-sonnet", "input_tokens": 10_000,
                               "max_output_tokens": 10_000}})
        d.expect((200,), "POST", "/v1/reservations/%s/settle" % rid,
                 {"usage": {"model": "claude-3-5-sonnet", "input_tokens": 10_000,
                            "output_tokens": 20_000, "cached_input_tokens": 1_000},
                  "outcome": "success"})
    # Past the daily cap: a counted rejection (402).
    d.expect((402,), "POST", "/v1/reservations",
             {"reservation_id": "check-refused", "account": "agent", "amount_micros": 5_000_000})
    # One pending reservation, and amount-only usage.
    d.expect((201,), "POST", "/v1/reservations",
             {"reservation_id": "check-pending", "account": "org", "amount_micros": 1_000})
    d.expect((201,), "POST", "/v1/usage",
             {"usage_id": "check-u1", "account": "org", "amount_micros": 1_000})


# --------------------------------------------------------------- /metrics

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """-> (families {name: type}, series {sample name: [label dicts]})"""
    families = {}
    series = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                families[parts[2]] = parts[3]
            continue
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise CheckError("unparsable /metrics line: %r" % line)
        labels = {}
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            if not lm:
                raise CheckError("unparsable labels in /metrics line: %r" % line)
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        series.setdefault(m.group(1), []).append(labels)
    return families, series


def served_names(families, series):
    names = set(series)
    for name, kind in families.items():
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        elif kind == "summary":
            names |= {name, name + "_sum", name + "_count"}
        else:
            names.add(name)
    return names


# --------------------------------------------------------------- PromQL

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"(?<![A-Za-z0-9_:$])(purser_[A-Za-z0-9_:]*)\s*(\{([^}]*)\})?")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'[^\']*\')\s*,?')


def strip_comments(expr):
    out = []
    for line in expr.splitlines():
        # a '#' outside a string starts a comment
        cut = None
        in_str = None
        i = 0
        while i < len(line):
            c = line[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == in_str:
                    in_str = None
            elif c in "\"'`":
                in_str = c
            elif c == "#":
                cut = i
                break
            i += 1
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


def selectors(expr):
    """Yields (metric name, [(label, op, value)]) for every purser_* selector."""
    expr = strip_comments(expr)
    # Metric names outside strings only: blank the strings out, but keep
    # them for the matchers (same offsets).
    blanked = STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)
    for m in SELECTOR.finditer(blanked):
        name = m.group(1)
        matchers = []
        if m.group(2):
            body = expr[m.start(3):m.end(3)]
            pos = 0
            while pos < len(body):
                mm = MATCHER.match(body, pos)
                if not mm:
                    if body[pos:].strip():
                        raise CheckError("cannot parse the matchers of %s in: %s" % (name, expr))
                    break
                matchers.append((mm.group(1), mm.group(2), mm.group(3)[1:-1]))
                pos = mm.end()
        yield name, matchers


# --------------------------------------------------------------- sources

def dashboard_exprs(dash):
    """-> [(where, expr)] from panel targets (rows' nested panels too) and variables."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []) or []:
                if "expr" in t:
                    out.append(("panel %s %r target %s" % (p.get("id"), p.get("title"), t.get("refId")),
                                t["expr"]))
            walk(p.get("panels", []) or [])

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        for text in (q, v.get("definition", "")):
            if text:
                out.append(("variable %s" % v.get("name"), text))
    return out


def rules_exprs(path):
    """-> [(where, expr)] for every `expr:` of a Prometheus rules file.

    A line-based reader (stdlib only) for the YAML forms rule files use:
    `expr: value`, quoted values, and `|`/`>` block scalars."""
    out = []
    lines = open(path).read().splitlines()
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)(?:-\s+)?(alert|record)\s*:\s*(.*)$", line)
        if m:
            name = m.group(3).strip().strip("'\"")
        m = re.match(r"^(\s*)(?:-\s+)?expr\s*:\s*(.*)$", line)
        if not m:
            i += 1
            continue
        indent = len(m.group(1)) + (2 if line.lstrip().startswith("-") else 0)
        value = m.group(2).rstrip()
        if re.match(r"^[|>][-+0-9]*\s*(#.*)?$", value):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            out.append(("rule %s" % name, "\n".join(block)))
            continue
        if value[:1] in "'\"":
            q = value[0]
            value = value[1:value.rindex(q)] if value.rindex(q) > 0 else value[1:]
            if q == "'":
                value = value.replace("''", "'")
        else:
            value = re.sub(r"\s+#.*$", "", value)
        out.append(("rule %s" % name, value))
        i += 1
    if not out:
        raise CheckError("%s: no expr found" % path)
    return out


# --------------------------------------------------------------- dashboard structure

def check_dashboard(dash):
    problems = []
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problems.append("schemaVersion %r: want 36 or later (Grafana 10: 38)" % dash.get("schemaVersion"))
    if not dash.get("uid") or not dash.get("title"):
        problems.append("the dashboard needs a uid and a title")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no `datasource` template variable of type datasource, query prometheus")
    acct = variables.get("account")
    if not acct or acct.get("type") != "query":
        problems.append("no `account` query template variable")
    else:
        q = acct.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        if re.sub(r"\s", "", q) != "label_values(purser_account_spend_today_micro_usd,account)":
            problems.append("the account variable's query is %r" % q)
        if not uses_variable(acct.get("datasource")):
            problems.append("the account variable does not use ${datasource}")

    ids = {}
    boxes = []

    def walk(panels, nested):
        for p in panels:
            pid = p.get("id")
            where = "panel %r (%r)" % (pid, p.get("title"))
            if not isinstance(pid, int):
                problems.append("%s: id is not an integer" % where)
            elif pid in ids:
                problems.append("%s: id also used by %r" % (where, ids[pid]))
            else:
                ids[pid] = p.get("title")
            g = p.get("gridPos") or {}
            if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
                problems.append("%s: gridPos needs integer x, y, w, h" % where)
            elif g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > 24:
                problems.append("%s: gridPos %r is off the 24-column grid" % (where, g))
            elif not nested:
                boxes.append((where, g))
            if p.get("type") == "row":
                walk(p.get("panels", []) or [], True)
                continue
            if not p.get("type") or not p.get("title"):
                problems.append("%s: needs a type and a title" % where)
            if not uses_variable(p.get("datasource")):
                problems.append("%s: datasource %r is not ${datasource}" % (where, p.get("datasource")))
            targets = p.get("targets") or []
            if not targets:
                problems.append("%s: no targets" % where)
            refs = set()
            for t in targets:
                if not (t.get("expr") or "").strip():
                    problems.append("%s: target %r has no expr" % (where, t.get("refId")))
                if t.get("refId") in refs:
                    problems.append("%s: refId %r twice" % (where, t.get("refId")))
                refs.add(t.get("refId"))
                if "datasource" in t and not uses_variable(t["datasource"]):
                    problems.append("%s: target %r datasource %r is not ${datasource}"
                                    % (where, t.get("refId"), t["datasource"]))

    walk(dash.get("panels", []), False)
    if not ids:
        problems.append("no panels")
    for i, (wa, a) in enumerate(boxes):
        for wb, b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and
                    a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                problems.append("%s overlaps %s" % (wa, wb))
    return problems


def uses_variable(ds):
    if isinstance(ds, dict):
        return ds.get("uid") in ("${datasource}", "$datasource")
    return ds in ("${datasource}", "$datasource")


# --------------------------------------------------------------- main

GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels the scrape adds to every series.
TARGET_LABELS = {"job", "instance"}


def check_names(sources, names, series):
    problems = []
    used = set()
    for where, expr in sources:
        found = list(selectors(expr))
        known = set(TARGET_LABELS)
        for name, _ in found:
            for ls in series.get(name, []):
                known |= set(ls)
        blanked = STRING.sub('""', strip_comments(expr))
        for group in GROUPING.finditer(blanked):
            for label in filter(None, (x.strip() for x in group.group(1).split(","))):
                if label not in known:
                    problems.append("%s: grouping label %r is on none of the series %s"
                                    % (where, label, sorted({n for n, _ in found})))
        for name, matchers in found:
            used.add(name)
            if name not in names:
                problems.append("%s: %s is not served by /metrics" % (where, name))
                continue
            label_sets = series.get(name, [])
            for label, op, value in matchers:
                if label == "__name__":
                    continue
                if not any(label in ls for ls in label_sets):
                    problems.append("%s: %s has no label %r in /metrics" % (where, name, label))
                elif op == "=" and "$" not in value and not any(ls.get(label) == value
                                                                for ls in label_sets):
                    problems.append("%s: no %s series has %s=%r" % (where, name, label, value))
    return problems, used


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("purserd")
    ap.add_argument("--dashboard", default=os.path.join(HERE, "grafana", "purser.json"))
    ap.add_argument("--rules", default=os.path.join(HERE, "prometheus", "rules.yml"))
    ap.add_argument("--dump-metrics", help="write the /metrics text served to this file")
    args = ap.parse_args()

    problems = []
    try:
        with open(args.dashboard) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print("FAIL: %s: %s" % (args.dashboard, e))
        return 1
    problems += ["dashboard: " + p for p in check_dashboard(dash)]
    try:
        sources = [("dashboard " + w, e) for w, e in dashboard_exprs(dash)]
        sources += [("rules " + w, e) for w, e in rules_exprs(args.rules)]
    except (OSError, CheckError) as e:
        print("FAIL: %s" % e)
        return 1

    with tempfile.TemporaryDirectory(prefix="purser-grafana-check.") as tmp:
        daemon = Purserd(os.path.abspath(args.purserd), os.path.join(tmp, "data"))
        try:
            daemon.start()
            make_traffic(daemon)
            time.sleep(0.5)  # let the notifier try the receiver once
            status, text = daemon.request("GET", "/metrics", auth=False)
            if status != 200:
                raise CheckError("GET /metrics answered %d: %s" % (status, text[:500]))
        except (CheckError, OSError) as e:
            daemon.stop()
            print("FAIL: %s\npurserd stderr:\n%s" % (e, daemon.read_stderr()))
            return 1
        code = daemon.stop()
        if code != 0:
            problems.append("purserd exited %r after SIGTERM (want 0)" % code)
    if args.dump_metrics:
        with open(args.dump_metrics, "w") as f:
            f.write(text)

    families, series = parse_metrics(text)
    names = served_names(families, series)
    for name in DOCUMENTED:
        if name not in families:
            problems.append("/metrics does not serve %s (shared/API.md documents it)" % name)
        elif not any(s == name or s.startswith(name + "_") for s in series):
            problems.append("/metrics serves no sample of %s after the traffic" % name)
    try:
        name_problems, used = check_names(sources, names, series)
    except CheckError as e:
        print("FAIL: %s" % e)
        return 1
    problems += name_problems

    print("/metrics: %d families, %d names with samples" % (len(families), len(series)))
    print("checked %d expressions (%s, %s): %d purser_* names"
          % (len(sources), args.dashboard, args.rules, len(used)))
    unused = sorted(f for f in families if not any(u == f or u.startswith(f + "_") for u in used))
    if unused:
        print("served but used nowhere: " + ", ".join(unused))
    if problems:
        for p in problems:
            print("FAIL: " + p)
        print("%d problem(s)" % len(problems))
        return 1
    print("PASS: every metric name used is served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
