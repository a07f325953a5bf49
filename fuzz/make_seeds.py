#!/usr/bin/env python3
"""Makes the fuzz targets' seed corpora (fuzz/README.md), before afl-cmin.

    python3 make_seeds.py SPROUT_BINARY OUT_DIR

writes OUT_DIR/decoder/, OUT_DIR/binlog/ and OUT_DIR/beanstalkd_binlog/:

- decoder: protocol scripts (every command, puts of every kind, bad and
  over-long lines, lone CRs), each under a few -z choices and schedules;
- binlog: the files the real sprout (SPROUT_BINARY, -s 4096) leaves after
  a few scenarios and kill -9 (puts, deletes, buries, kicks, delays,
  reserve-job, compaction, a restart, a padding record written over
  damage that --skip-damaged-records skipped);
- beanstalkd_binlog: the files Debian's beanstalkd (/usr/bin/beanstalkd,
  -s 4096) leaves after the same kind of scenarios and kill -9, the same
  files converted to the older version 5, and the fixtures in
  src/binlog/beanstalkd/testdata/.

An input for the binlog targets is a flags byte, the first file's number,
and the files joined by SEPARATOR (fuzz/targets/binlog_dir.rs).
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SEPARATOR = b"%%binlog%%"
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "src", "binlog", "beanstalkd", "testdata")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        for _ in range(100):
            try:
                self.sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("no server on port %d" % port)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text, body=None):
        data = text.encode() + b"\r\n"
        if body is not None:
            data += body + b"\r\n"
        self.sock.sendall(data)
        reply = self.line()
        if reply.startswith(b"RESERVED") or reply.startswith(b"FOUND") or reply.startswith(b"OK"):
            size = int(reply.split()[-1])
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            self.buf = self.buf[size + 2:]
        return reply

    def put(self, body, pri=100, delay=0, ttr=60):
        reply = self.cmd("put %d %d %d %d" % (pri, delay, ttr, len(body)), body)
        assert reply.startswith(b"INSERTED"), reply
        return int(reply.split()[1])

    def reserve(self):
        return int(self.cmd("reserve-with-timeout 0").split()[1])


def run_server(argv, port, scenario):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Client(port)
        scenario(client)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def files_of(d):
    out = []
    for name in os.listdir(d):
        if name.startswith("binlog.") and name[7:].isdigit():
            with open(os.path.join(d, name), "rb") as f:
                out.append((int(name[7:]), f.read()))
    out.sort()
    return out


def trim(data):
    """The bytes up to the last non-zero one, rounded up to 8 (the target
    pads them back to 4096 when its flag says so)."""
    end = len(data.rstrip(b"\0"))
    return data[: min(len(data), (end + 7) // 8 * 8)]


def pack(files, fix=False, pad=True):
    """One input of the binlog targets: at most 3 files, numbered from
    the first one's N with no gaps (later ones are dropped)."""
    files = files[-3:]
    flags = {1: 1, 2: 2, 3: 3}[len(files)] | (4 if fix else 0) | (8 if pad else 0)
    first = files[0][0]
    # A gap the flags can say: 0 to 3 between consecutive numbers.
    gaps = {b[0] - a[0] - 1 for a, b in zip(files, files[1:])}
    gap = gaps.pop() if len(gaps) == 1 else 0
    if first > 255 or not 0 <= gap <= 3:
        first, gap = 1, 0
    flags |= gap << 4
    return bytes([flags, first]) + SEPARATOR.join(trim(b) for _, b in files)


def write(out, name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


# ---- scenarios, for both servers ----


def scenario_few(c):
    c.put(b"hello")
    c.put(b"")
    c.cmd("use tube-a")
    c.put(b"\r\n\0binary\xff", pri=0, ttr=1)


def scenario_states(c):
    ids = [c.put(b"job %d" % i, pri=i) for i in range(8)]
    c.cmd("use other")
    ids += [c.put(b"x" * 50, delay=3600) for _ in range(2)]
    c.cmd("use default")
    c.cmd("delete %d" % ids[0])
    r = c.reserve()
    c.cmd("bury %d 7" % r)
    r = c.reserve()
    c.cmd("release %d 5 3600" % r)
    r = c.reserve()
    c.cmd("bury %d 1" % r)
    c.cmd("kick 1")
    r = c.reserve()  # left reserved
    c.cmd("watch other")
    c.cmd("reserve-job %d" % ids[-1])


def scenario_churn(c):
    # Enough to rotate 4 KiB files, compact and retire some.
    live = []
    for i in range(120):
        live.append(c.put(b"%d" % i * 20))
        if i % 3:
            c.cmd("delete %d" % live.pop(0))
    c.put(b"last")


def scenario_big_body(c):
    c.put(b"b" * 3000)
    c.put(b"c" * 5000)
    c.put(b"tail")


SCENARIOS = {"few": scenario_few, "states": scenario_states, "churn": scenario_churn, "big": scenario_big_body}


def sprout_seeds(sprout, out):
    base = tempfile.mkdtemp(prefix="sprout-seeds-")
    try:
        for name, scenario in SCENARIOS.items():
            d = os.path.join(base, name)
            port = free_port()
            run_server([sprout, "-l", "127.0.0.1", "-p", str(port), "-b", d, "-s", "4096", "-f", "0"], port, scenario)
            files = files_of(d)
            write(out, "sprout-%s" % name, pack(files))
            write(out, "sprout-%s-fix" % name, pack(files, fix=True, pad=False))
            # A restart on the same directory, and more changes.
            port = free_port()
            run_server(
                [sprout, "-l", "127.0.0.1", "-p", str(port), "-b", d, "-s", "4096", "-f", "0"],
                port,
                lambda c: (c.cmd("kick 10"), c.put(b"after restart"), c.cmd("delete 1")),
            )
            write(out, "sprout-%s-restart" % name, pack(files_of(d)))
        # Damage skipped and padded over: flip a byte inside a record of
        # the states scenario, start with --skip-damaged-records.
        d = os.path.join(base, "states")
        seq, data = files_of(d)[0]
        data = bytearray(data)
        data[32 + 8 + 20] ^= 0xFF
        with open(os.path.join(d, "binlog.%d" % seq), "wb") as f:
            f.write(data)
        write(out, "sprout-flipped", pack(files_of(d)))
        port = free_port()
        run_server(
            [sprout, "-l", "127.0.0.1", "-p", str(port), "-b", d, "-s", "4096", "--skip-damaged-records"],
            port,
            lambda c: c.put(b"after padding"),
        )
        write(out, "sprout-padded", pack(files_of(d)))
        # A torn tail: the last record cut short.
        d = os.path.join(base, "few")
        files = files_of(d)
        seq, data = files[-1]
        end = len(data.rstrip(b"\0"))
        write(out, "sprout-torn", pack(files[:-1] + [(seq, data[: end - 5])], pad=False))
    finally:
        shutil.rmtree(base)


def to_v5(data):
    """A version 7 file as version 5: 8-byte name lengths, 77-byte job
    records, times in microseconds. Stops where the v7 records stop."""
    out = bytearray(struct.pack("<i", 5))
    at = 4
    while at + 4 <= len(data):
        (name_len,) = struct.unpack_from("<i", data, at)
        if name_len < 0 or name_len > 200 or at + 4 + name_len + 80 > len(data):
            break
        rec = bytearray(data[at + 4 + name_len : at + 4 + name_len + 80])
        job_id = struct.unpack_from("<Q", rec, 0)[0]
        if job_id == 0:
            break
        for off in (16, 24, 40, 48):
            (ns,) = struct.unpack_from("<q", rec, off)
            struct.pack_into("<Q", rec, off, max(ns, 0) // 1000)
        body_size = struct.unpack_from("<i", rec, 32)[0]
        body = data[at + 4 + name_len + 80 : at + 4 + name_len + 80 + body_size] if name_len else b""
        out += struct.pack("<Q", name_len) + data[at + 4 : at + 4 + name_len] + rec[:77] + body
        at += 4 + name_len + 80 + (body_size if name_len else 0)
    return bytes(out)


def beanstalkd_seeds(out):
    base = tempfile.mkdtemp(prefix="beanstalkd-seeds-")
    try:
        for name, scenario in SCENARIOS.items():
            d = os.path.join(base, name)
            os.mkdir(d)
            port = free_port()
            argv = ["/usr/bin/beanstalkd", "-l", "127.0.0.1", "-p", str(port), "-b", d, "-s", "4096"]
            run_server(argv, port, scenario)
            files = files_of(d)
            write(out, "beanstalkd-%s" % name, pack(files))
            write(out, "beanstalkd-%s-v5" % name, pack([(s, to_v5(b)) for s, b in files]))
            port = free_port()
            argv = ["/usr/bin/beanstalkd", "-l", "127.0.0.1", "-p", str(port), "-b", d, "-s", "4096"]
            run_server(argv, port, lambda c: (c.cmd("kick 10"), c.put(b"after restart"), c.cmd("delete 1")))
            write(out, "beanstalkd-%s-restart" % name, pack(files_of(d)))
        for fixture in ("session", "rotation", "restart"):
            files = files_of(os.path.join(FIXTURES, fixture))
            write(out, "fixture-%s" % fixture, pack(files))
            write(out, "fixture-%s-v5" % fixture, pack([(s, to_v5(b)) for s, b in files]))
        # A torn tail, and a file of zeros after one with records.
        files = files_of(os.path.join(FIXTURES, "session"))
        seq, data = files[0]
        end = len(data.rstrip(b"\0"))
        write(out, "fixture-session-torn", pack([(seq, data[: end - 30])], pad=False))
        write(out, "fixture-session-zeros-after", pack([(seq, data), (seq + 1, b"\0" * 16)]))
    finally:
        shutil.rmtree(base)


# ---- the decoder ----

SCRIPTS = {
    "commands": b"use foo\r\nwatch foo\r\nignore default\r\nlist-tubes\r\nlist-tube-used\r\n"
    b"list-tubes-watched\r\nstats\r\nstats-tube foo\r\nstats-job 1\r\npeek 1\r\npeek-ready\r\n"
    b"peek-delayed\r\npeek-buried\r\nreserve\r\nreserve-with-timeout 0\r\nreserve-job 3\r\n"
    b"delete 1\r\nrelease 1 2 3\r\nbury 1 2\r\ntouch 1\r\nkick 10\r\nkick-job 4\r\n"
    b"pause-tube foo 10\r\nquit\r\n",
    "puts": b"put 1 0 5 3\r\nabc\r\nput 0 0 1 0\r\n\r\nput 4294967295 0 1 4\r\n\r\n\0x\r\n",
    "put-without-crlf": b"put 1 0 5 1\r\nxy\r\nlist-tube-used\r\n",
    "put-too-big": b"put 0 0 1 70000\r\n" + b"z" * 200 + b"\r\nstats\r\n",
    "bad-lines": b"put 1 2 3\r\nput 1 2 3 x\r\nput -1 0 1 1\r\nfoo\r\n\r\nuse -a\r\n"
    b"pause-tube -x 1\r\nreserve-with-timeout -1\r\nkick -3\r\npeek 99999999999999999999\r\n",
    "long-line": b"use " + b"a" * 230 + b"\r\nlist-tube-used\r\n",
    "line-224": b"use " + b"a" * 218 + b"\r\nstats\r\n",
    "lone-cr": b"use a\rb\r\nlist-tube-used\nlist-tube-used\r\n" + b"x" * 223 + b"\r\r\nquit\r\n",
    "nul": b"use a\0b\r\nput 0 0 1 2\r\n\0\0\r\n",
}


def decoder_seeds(out):
    for name, script in SCRIPTS.items():
        # -z 65535 in reads of 1 to 32 bytes; -z 0 in reads of 7, stopping
        # after each read's first event; -z 100 in reads of 64 with turns
        # between, aiming after every put.
        write(out, "%s-1" % name, bytes([4, 4, 0, 5, 16, 31]) + script)
        write(out, "%s-2" % name, bytes([0, 1, 0x46]) + script)
        write(out, "%s-3" % name, bytes([3 | 8, 2, 32 | 0x80, 2]) + script)
    # A large put, in aimed reads, then another of the same size.
    body = b"q" * 20000
    big = b"put 0 0 1 20000\r\n" + body + b"\r\n"
    write(out, "aimed", bytes([4, 2, 63, 40]) + big + big + b"put 0 0 1 3\r\nabc\r\n")


def main():
    sprout, out = sys.argv[1], sys.argv[2]
    for target in ("decoder", "binlog", "beanstalkd_binlog"):
        os.makedirs(os.path.join(out, target), exist_ok=True)
    decoder_seeds(os.path.join(out, "decoder"))
    sprout_seeds(os.path.abspath(sprout), os.path.join(out, "binlog"))
    beanstalkd_seeds(os.path.join(out, "beanstalkd_binlog"))


if __name__ == "__main__":
    main()
