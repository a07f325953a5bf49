#!/usr/bin/env python3
"""Producer/worker flow through the greenstalk client library (PyPI).

Usage: python3 tests/clients/greenstalk_flow.py PORT [--reference]

Talks to a beanstalk server on 127.0.0.1:PORT (sprout, or beanstalkd to check
this script). Every step asserts its result; the first failed check exits 1
with a message naming the step. Exit 3 means greenstalk is not installed.
--reference says the server is beanstalkd 1.12, which often never expires a
reserved job's TTR unless the reserving connection sends another command (its
connection "tick" is lost; beanstalkd issue #262, PR #334). With it the TTR
step polls through the reserving connection, which makes beanstalkd notice;
without it the step polls from another connection, as a drop-in must allow.
The server should be fresh: the script uses its own tube names, but counts
like current-tubes are only checked as lower bounds.
"""

import os
import socket
import sys
import threading
import time
import traceback

try:
    import greenstalk
except ImportError as e:
    print(f"greenstalk is not installed ({e}); pip install greenstalk", file=sys.stderr)
    sys.exit(3)

try:
    import yaml  # PyYAML: cross-checks that the stats bodies are real YAML
except ImportError:
    yaml = None

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
PORT = int(ARGS[0]) if ARGS else 11300
REFERENCE = "--reference" in sys.argv[1:]
ADDR = ("127.0.0.1", PORT)
TUBE = f"gs-jobs-{os.getpid()}"
OTHER = f"gs-other-{os.getpid()}"

STEP = "start"


def step(name):
    global STEP
    STEP = name
    print(f"- {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def raises(exc, fn, what):
    try:
        value = fn()
    except exc:
        return
    except Exception as e:  # noqa: BLE001 - report the wrong exception
        raise AssertionError(f"{what}: expected {exc.__name__}, got {type(e).__name__}: {e!r}")
    raise AssertionError(f"{what}: expected {exc.__name__}, got a result: {value!r}")


def raw_body(command):
    """Sends one command on a fresh raw connection and returns the OK body."""
    with socket.create_connection(ADDR, timeout=10) as s:
        s.sendall(command.encode() + b"\r\n")
        f = s.makefile("rb")
        line = f.readline()
        check(line.startswith(b"OK ") and line.endswith(b"\r\n"), f"{command}: reply {line!r}")
        n = int(line[3:-2])
        body = f.read(n + 2)
        check(body.endswith(b"\r\n") and len(body) == n + 2, f"{command}: body framing {body!r}")
        return body[:-2]


def yaml_check(command, parsed):
    """The body must parse as YAML and agree with greenstalk's own parse."""
    if yaml is None:
        if os.environ.get("CI"):
            raise AssertionError("PyYAML is missing in CI (pip install pyyaml)")
        print("  (PyYAML not installed: YAML cross-check skipped)")
        return
    body = raw_body(command)
    doc = yaml.safe_load(body)
    if command.startswith("list-"):
        check(isinstance(doc, list), f"{command}: YAML is not a list: {doc!r}")
        check(all(isinstance(t, str) for t in doc), f"{command}: non-string tube in {doc!r}")
        return doc
    check(isinstance(doc, dict), f"{command}: YAML is not a mapping: {doc!r}")
    eq(sorted(doc), sorted(parsed), f"{command}: keys of the YAML parse vs greenstalk's")
    # Same bytes through greenstalk's parser: every integer must agree.
    for key, value in greenstalk._parse_stats(body).items():
        # (stats' random hex "id" may look like a number to one parser only.)
        if isinstance(value, int) and key not in ("id", "hostname"):
            eq(doc[key], value, f"{command}: YAML {key}")
    # String fields must stay strings for YAML (quoted where needed).
    for key in ("version", "name", "tube", "state"):
        if key in doc:
            check(isinstance(doc[key], str), f"{command}: YAML {key} is {doc[key]!r}, not a string")
    return doc


STATS_KEYS = """current-jobs-urgent current-jobs-ready current-jobs-reserved
current-jobs-delayed current-jobs-buried cmd-put cmd-peek cmd-peek-ready
cmd-peek-delayed cmd-peek-buried cmd-reserve cmd-reserve-with-timeout cmd-delete
cmd-release cmd-use cmd-watch cmd-ignore cmd-bury cmd-kick cmd-touch cmd-stats
cmd-stats-job cmd-stats-tube cmd-list-tubes cmd-list-tube-used
cmd-list-tubes-watched cmd-pause-tube job-timeouts total-jobs max-job-size
current-tubes current-connections current-producers current-workers
current-waiting total-connections pid version rusage-utime rusage-stime uptime
binlog-oldest-index binlog-current-index binlog-records-migrated
binlog-records-written binlog-max-size draining id hostname os platform""".split()

JOB_KEYS = """id tube state pri age delay ttr time-left file reserves timeouts
releases buries kicks""".split()

TUBE_KEYS = """name current-jobs-urgent current-jobs-ready current-jobs-reserved
current-jobs-delayed current-jobs-buried total-jobs current-using
current-watching current-waiting cmd-delete cmd-pause-tube pause
pause-time-left""".split()


def main():
    step("connect producer (use) and worker (watch)")
    producer = greenstalk.Client(ADDR, use=TUBE)
    worker = greenstalk.Client(ADDR, watch=TUBE)
    eq(producer.using(), TUBE, "producer list-tube-used")
    eq(worker.watching(), [TUBE], "worker list-tubes-watched")
    eq(producer.watching(), ["default"], "producer still watches default")

    step("empty tube: reserve with timeout 0 times out, peeks find nothing")
    raises(greenstalk.TimedOutError, lambda: worker.reserve(timeout=0), "reserve-with-timeout 0")
    raises(greenstalk.NotFoundError, producer.peek_ready, "peek-ready on empty tube")
    raises(greenstalk.NotFoundError, producer.peek_delayed, "peek-delayed on empty tube")
    raises(greenstalk.NotFoundError, producer.peek_buried, "peek-buried on empty tube")

    step("put jobs with priorities, a delay and a ttr")
    a = producer.put("job a", priority=100, ttr=30)
    b = producer.put("job b", priority=10)
    c = producer.put("job c", priority=10)
    d = producer.put("job d (delayed)", priority=0, delay=60)
    check(a < b < c < d, f"job ids increase: {a} {b} {c} {d}")
    st = producer.stats_tube(TUBE)
    for key in TUBE_KEYS:
        check(key in st, f"stats-tube key {key!r} missing: {sorted(st)}")
    eq(st["name"], TUBE, "stats-tube name")
    eq(st["current-jobs-ready"], 3, "stats-tube ready")
    eq(st["current-jobs-urgent"], 3, "stats-tube urgent (pri < 1024)")
    eq(st["current-jobs-delayed"], 1, "stats-tube delayed")
    eq(st["total-jobs"], 4, "stats-tube total-jobs")
    eq(st["current-using"], 1, "stats-tube current-using")
    eq(st["current-watching"], 1, "stats-tube current-watching")
    yaml_check(f"stats-tube {TUBE}", st)

    step("peek, peek-ready, peek-delayed")
    eq(producer.peek(a).body, "job a", "peek a")
    pr = producer.peek_ready()
    eq((pr.id, pr.body), (b, "job b"), "peek-ready is the most urgent, oldest job")
    pd = producer.peek_delayed()
    eq((pd.id, pd.body), (d, "job d (delayed)"), "peek-delayed")
    raises(greenstalk.NotFoundError, lambda: producer.peek(10**9), "peek of unknown id")

    step("reserve in priority order; stats-job while reserved")
    j = worker.reserve(timeout=1)
    eq((j.id, j.body), (b, "job b"), "first reserve")
    sj = worker.stats_job(j)
    for key in JOB_KEYS:
        check(key in sj, f"stats-job key {key!r} missing: {sorted(sj)}")
    eq(sj["id"], b, "stats-job id")
    eq(sj["tube"], TUBE, "stats-job tube")
    eq(sj["state"], "reserved", "stats-job state")
    eq(sj["pri"], 10, "stats-job pri")
    eq(sj["ttr"], 60, "stats-job ttr (greenstalk default)")
    eq(sj["reserves"], 1, "stats-job reserves")
    check(0 < sj["time-left"] <= 60, f"time-left in (0, 60]: {sj['time-left']}")
    yaml_check(f"stats-job {b}", sj)
    eq(producer.stats_tube(TUBE)["current-jobs-reserved"], 1, "stats-tube reserved")

    step("touch, release with a new priority, reserve again")
    worker.touch(j)
    worker.release(j, priority=5)
    sj = producer.stats_job(b)
    eq((sj["state"], sj["pri"], sj["releases"]), ("ready", 5, 1), "after release")
    j = worker.reserve(timeout=1)
    eq(j.id, b, "released job comes back first (pri 5)")
    eq(producer.stats_job(b)["reserves"], 2, "reserves after second reserve")

    step("only the reserving connection may release/touch/bury")
    raises(greenstalk.NotFoundError, lambda: producer.release(j), "release by another connection")
    raises(greenstalk.NotFoundError, lambda: producer.touch(j), "touch by another connection")
    raises(greenstalk.NotFoundError, lambda: producer.bury(j), "bury by another connection")

    step("bury, peek-buried, kick")
    worker.bury(j, priority=7)
    pb = producer.peek_buried()
    eq((pb.id, pb.body), (b, "job b"), "peek-buried")
    sj = producer.stats_job(b)
    eq((sj["state"], sj["pri"], sj["buries"]), ("buried", 7, 1), "after bury")
    eq(producer.stats_tube(TUBE)["current-jobs-buried"], 1, "stats-tube buried")
    eq(producer.kick(10), 1, "kick moves only the buried job (not the delayed one)")
    sj = producer.stats_job(b)
    eq((sj["state"], sj["kicks"]), ("ready", 1), "after kick")

    step("reserve and delete")
    j = worker.reserve(timeout=1)
    eq(j.id, b, "kicked job (pri 7) is next")
    worker.delete(j)
    raises(greenstalk.NotFoundError, lambda: producer.peek(b), "peek of deleted job")
    raises(greenstalk.NotFoundError, lambda: producer.stats_job(b), "stats-job of deleted job")
    raises(greenstalk.NotFoundError, lambda: worker.delete(b), "second delete")

    step("kick-job of a buried job and of a delayed job")
    j = worker.reserve(timeout=1)
    eq((j.id, j.body), (c, "job c"), "reserve c")
    worker.bury(j)
    producer.kick_job(c)
    eq(producer.stats_job(c)["state"], "ready", "kick-job buried -> ready")
    producer.kick_job(d)
    sj = producer.stats_job(d)
    eq((sj["state"], sj["kicks"]), ("ready", 1), "kick-job delayed -> ready")
    raises(greenstalk.NotFoundError, lambda: producer.kick_job(c), "kick-job of a ready job")

    step("reserve-job by id")
    j = worker.reserve_job(a)
    eq((j.id, j.body), (a, "job a"), "reserve-job a")
    eq(producer.stats_job(a)["state"], "reserved", "reserve-job state")
    raises(greenstalk.NotFoundError, lambda: producer.reserve_job(a), "reserve-job of a reserved job")
    worker.delete(a)
    for want in (d, c):  # d has pri 0, c pri 10
        j = worker.reserve(timeout=1)
        eq(j.id, want, "drain in priority order")
        worker.delete(j)
    raises(greenstalk.TimedOutError, lambda: worker.reserve(timeout=0), "tube drained")

    step("many jobs come out in (priority, id) order")
    ids = {}
    for i in range(40):
        pri = (i * 7) % 5
        ids[producer.put(f"bulk {i}", priority=pri)] = pri
    want = sorted(ids, key=lambda jid: (ids[jid], jid))
    got = []
    for _ in want:
        j = worker.reserve(timeout=1)
        got.append(j.id)
        worker.delete(j)
    eq(got, want, "bulk reserve order")

    step("delayed job becomes ready; reserve-with-timeout waits for it")
    t0 = time.monotonic()
    jid = producer.put("later", delay=1)
    eq(producer.stats_job(jid)["state"], "delayed", "delayed state")
    j = worker.reserve(timeout=5)
    waited = time.monotonic() - t0
    eq(j.id, jid, "reserve got the delayed job")
    check(0.5 <= waited < 4, f"delayed job waited {waited:.2f}s")
    worker.delete(j)

    step("blocked worker is woken by a put from another connection")
    result = {}

    def blocked_reserve():
        try:
            with greenstalk.Client(ADDR, watch=TUBE) as w:
                job = w.reserve(timeout=10)
                result["job"] = (job.id, job.body)
                w.delete(job)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            result["error"] = repr(e)

    t = threading.Thread(target=blocked_reserve)
    t.start()
    deadline = time.monotonic() + 5
    while producer.stats_tube(TUBE)["current-waiting"] < 1:
        check(time.monotonic() < deadline, "worker never showed up in current-waiting")
        time.sleep(0.02)
    check(producer.stats()["current-waiting"] >= 1, "stats current-waiting while blocked")
    jid = producer.put("wake up")
    t.join(10)
    check(not t.is_alive(), "blocked reserve did not return")
    check("error" not in result, f"blocked worker failed: {result.get('error')}")
    eq(result["job"], (jid, "wake up"), "blocked worker's job")

    step("ttr: DEADLINE_SOON, then the job times out back to ready")
    jid = producer.put("slow", ttr=1)
    j = worker.reserve(timeout=1)
    eq(j.id, jid, "reserve ttr=1 job")
    raises(greenstalk.DeadlineSoonError, lambda: worker.reserve(timeout=2), "reserve inside the safety margin")
    poller = worker if REFERENCE else producer  # see --reference above
    deadline = time.monotonic() + 5
    while poller.stats_job(jid)["state"] != "ready":
        check(time.monotonic() < deadline, "ttr expiry never released the job")
        time.sleep(0.05)
    sj = producer.stats_job(jid)
    eq(sj["timeouts"], 1, "stats-job timeouts")
    check(producer.stats()["job-timeouts"] >= 1, "stats job-timeouts")
    raises(greenstalk.NotFoundError, lambda: worker.touch(j), "touch after timeout")
    j = worker.reserve(timeout=1)
    eq(j.id, jid, "timed-out job is reservable again")
    worker.delete(j)

    step("a reserved job returns to ready when its connection closes")
    jid = producer.put("orphan")
    w2 = greenstalk.Client(ADDR, watch=TUBE)
    eq(w2.reserve(timeout=1).id, jid, "second worker reserves")
    w2.close()
    deadline = time.monotonic() + 5
    while producer.stats_job(jid)["state"] != "ready":
        check(time.monotonic() < deadline, "job not released on disconnect")
        time.sleep(0.02)
    j = worker.reserve(timeout=1)
    eq(j.id, jid, "orphaned job reserved again")
    worker.delete(j)

    step("watch and ignore")
    eq(worker.watch(OTHER), 2, "watch another tube")
    eq(worker.watch(OTHER), 2, "watching twice counts once")
    eq(sorted(worker.watching()), sorted([TUBE, OTHER]), "watch list")
    other = greenstalk.Client(ADDR, use=OTHER)
    jid = other.put("from the other tube")
    j = worker.reserve(timeout=1)
    eq(j.id, jid, "reserve from any watched tube")
    worker.delete(j)
    eq(worker.ignore(OTHER), 1, "ignore")
    raises(greenstalk.NotIgnoredError, lambda: worker.ignore(TUBE), "ignoring the last tube")
    other.put("not watched")
    raises(greenstalk.TimedOutError, lambda: worker.reserve(timeout=0), "ignored tube is not reserved from")
    tubes = producer.tubes()
    for tube in ("default", TUBE, OTHER):
        check(tube in tubes, f"list-tubes has {tube!r}: {tubes}")
    yaml_check("list-tubes", None)

    step("pause-tube")
    other.pause_tube(TUBE, 1)
    jid = producer.put("paused")
    raises(greenstalk.TimedOutError, lambda: worker.reserve(timeout=0), "reserve from a paused tube")
    st = producer.stats_tube(TUBE)
    eq(st["pause"], 1, "stats-tube pause")
    check(0 <= st["pause-time-left"] <= 1, f"pause-time-left: {st['pause-time-left']}")
    eq(st["cmd-pause-tube"], 1, "stats-tube cmd-pause-tube")
    t0 = time.monotonic()
    j = worker.reserve(timeout=5)
    eq(j.id, jid, "reserve after the pause ends")
    check(time.monotonic() - t0 < 4, "pause lasted too long")
    worker.delete(j)
    raises(greenstalk.NotFoundError, lambda: producer.pause_tube("no-such-tube-x", 1), "pause-tube of unknown tube")

    step("binary bodies and job size limit")
    raw = greenstalk.Client(ADDR, encoding=None, use=TUBE, watch=TUBE)
    body = bytes(range(256)) + b"\r\n\r\n" + b"\x00" * 10
    jid = raw.put(body)
    j = raw.reserve(timeout=1)
    eq((j.id, j.body), (jid, body), "binary round trip")
    raw.delete(j)
    jid = producer.put("héllo wörld ✓")
    eq(producer.peek(jid).body, "héllo wörld ✓", "utf-8 round trip")
    producer.delete(jid)
    jid = raw.put(b"")
    eq(raw.peek(jid).body, b"", "empty body")
    raw.delete(jid)
    max_size = producer.stats()["max-job-size"]
    jid = raw.put(b"x" * max_size)
    eq(len(raw.peek(jid).body), max_size, "body of exactly max-job-size")
    raw.delete(jid)
    raises(greenstalk.JobTooBigError, lambda: raw.put(b"x" * (max_size + 1)), "body over max-job-size")
    eq(raw.using(), TUBE, "connection still usable after JOB_TOO_BIG")

    step("stats")
    s = producer.stats()
    for key in STATS_KEYS:
        check(key in s, f"stats key {key!r} missing")
    for key in STATS_KEYS:
        if key not in ("version", "rusage-utime", "rusage-stime", "draining", "id", "hostname", "os", "platform"):
            check(isinstance(s[key], int), f"stats {key} is not an integer: {s[key]!r}")
    check(s["cmd-put"] >= 50, f"cmd-put: {s['cmd-put']}")
    check(s["total-jobs"] >= 50, f"total-jobs: {s['total-jobs']}")
    check(s["current-connections"] >= 4, f"current-connections: {s['current-connections']}")
    check(s["current-producers"] >= 2, f"current-producers: {s['current-producers']}")
    check(s["current-tubes"] >= 3, f"current-tubes: {s['current-tubes']}")
    check(s["cmd-pause-tube"] >= 1, f"cmd-pause-tube: {s['cmd-pause-tube']}")
    eq(s["draining"], "false", "draining")
    check(isinstance(s["version"], str) and s["version"], f"version: {s['version']!r}")
    doc = yaml_check("stats", s)
    if doc is not None:
        check(doc["draining"] is False, f"YAML draining: {doc['draining']!r}")

    for c in (producer, worker, other, raw):
        c.close()
    print("greenstalk flow: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED at step '{STEP}': {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - unexpected errors fail the flow too
        traceback.print_exc()
        print(f"FAILED at step '{STEP}': unexpected {type(e).__name__}: {e!r}", file=sys.stderr)
        sys.exit(1)
