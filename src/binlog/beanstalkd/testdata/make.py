#!/usr/bin/env python3
"""Makes the fixtures in this folder with a real beanstalkd 1.12.

Usage: python3 make.py [/usr/bin/beanstalkd]

Each scenario runs beanstalkd with `-b DIR -s 4096` on a free loopback port,
drives it with raw protocol commands, stops it with SIGKILL (as a crash
would), and copies DIR/binlog.* to <scenario>/. It then starts beanstalkd
once more on a scratch copy of those files and writes what beanstalkd's own
recovery made of them to <scenario>.expected, one job a line:
`job ID state=.. pri=.. tube=.. ttr=.. reserves=.. timeouts=.. releases=..
buries=.. kicks=.. body=HEX` (or `job ID absent`), then `next-id N`, the id
the next put got.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BEANSTALKD = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/beanstalkd"
HERE = os.path.dirname(os.path.abspath(__file__))
LONG_TUBE = "t" * 199 + "Z"  # 200 bytes: the longest name beanstalkd takes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, directory):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [BEANSTALKD, "-l", "127.0.0.1", "-p", str(self.port), "-b", directory, "-s", "4096"])
        for _ in range(200):
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError("beanstalkd did not start")
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def data(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n + 2:]
        return body

    def cmd(self, line, body=None, expect=None):
        out = line.encode() + b"\r\n"
        if body is not None:
            out += body + b"\r\n"
        self.sock.sendall(out)
        reply = self.line()
        words = reply.split()
        if words[0] in ("RESERVED", "FOUND", "OK"):
            return reply, self.data(int(words[-1]))
        if expect is not None and not reply.startswith(expect):
            raise RuntimeError(f"{line!r}: {reply!r}, expected {expect!r}")
        return reply, None

    def put(self, body, pri=0, delay=0, ttr=10):
        reply, _ = self.cmd(f"put {pri} {delay} {ttr} {len(body)}", body, expect="INSERTED")
        return int(reply.split()[1])

    def crash(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.sock.close()


def scenario_session(srv):
    """One run: every kind of record beanstalkd writes, nothing rotated."""
    srv.cmd("use tA", expect="USING")
    srv.put(b"job-one", pri=10, ttr=30)                      # 1 ready
    srv.put(b"delayed-job", pri=5, delay=3600, ttr=60)       # 2 delayed
    srv.cmd("use tB", expect="USING")
    srv.put(b"to-delete")                                    # 3 deleted
    srv.cmd("delete 3", expect="DELETED")
    srv.put(b"to-bury", pri=100)                             # 4 buried, pri 99
    srv.cmd("reserve-job 4")
    srv.cmd("bury 4 99", expect="BURIED")
    srv.put(b"stays-reserved")                               # 5 reserved
    srv.cmd("reserve-job 5")
    srv.put(b"released-ready")                               # 6 released, no delay
    srv.cmd("reserve-job 6")
    srv.cmd("release 6 77 0", expect="RELEASED")
    srv.put(b"released-delayed")                             # 7 released, delay
    srv.cmd("reserve-job 7")
    srv.cmd("release 7 55 100", expect="RELEASED")
    srv.put(b"kicked")                                       # 8 buried, kicked
    srv.cmd("reserve-job 8")
    srv.cmd("bury 8 1", expect="BURIED")
    srv.cmd("kick-job 8", expect="KICKED")
    srv.put(b"buried-second")                                # 9
    srv.put(b"buried-first")                                 # 10
    srv.cmd("reserve-job 10")
    srv.cmd("bury 10 2", expect="BURIED")
    srv.cmd("reserve-job 9")
    srv.cmd("bury 9 3", expect="BURIED")
    srv.put(b"")                                             # 11 empty body
    srv.put(b"a\r\nb\x00c\xff\r\n")                          # 12 binary body
    srv.cmd("use " + LONG_TUBE, expect="USING")
    srv.put(b"long-tube", pri=4294967295, ttr=4294967295)    # 13
    srv.put(b"delayed-kicked", delay=30)                     # 14 delayed, kicked
    srv.cmd("kick-job 14", expect="KICKED")


def scenario_rotation(srv):
    """Several files: rotation, files deleted, compaction's migrations (one
    of a reserved job, one of a buried job)."""
    body = b"x" * 400
    ids = [srv.put(body + b"%d" % i) for i in range(30)]
    srv.cmd(f"reserve-job {ids[0]}")
    srv.cmd(f"reserve-job {ids[1]}")
    srv.cmd(f"bury {ids[1]} 7", expect="BURIED")
    for i in ids[3:]:
        srv.cmd(f"delete {i}", expect="DELETED")
    for i in range(6):
        srv.put(b"after-%d" % i)
    reply, stats = srv.cmd("stats")
    print("rotation:", [l for l in stats.decode().splitlines() if "binlog" in l])


def scenario_restart_first(srv):
    srv.cmd("use tA", expect="USING")
    srv.put(b"first")                                        # 1
    srv.put(b"buried-before-restart")                        # 2
    srv.cmd("reserve-job 2")
    srv.cmd("bury 2 0", expect="BURIED")
    srv.put(b"deleted-after-restart")                        # 3
    srv.put(b"delayed", delay=7200)                          # 4


def scenario_restart_second(srv):
    """After beanstalkd read the first run's file back: short records in the
    new file for jobs whose full records are in the old one."""
    srv.cmd("delete 3", expect="DELETED")
    srv.cmd("kick-job 2", expect="KICKED")                   # bury_ct already +1 (#668)
    srv.cmd("use tB", expect="USING")
    srv.put(b"second-run")                                   # 5
    srv.cmd("reserve-job 4")


def expected(directory, out_path):
    """What beanstalkd's own recovery makes of the files."""
    scratch = tempfile.mkdtemp()
    for name in os.listdir(directory):
        shutil.copy(os.path.join(directory, name), scratch)
        os.chmod(os.path.join(scratch, name), 0o600)
    srv = Server(scratch)
    lines = []
    probe = srv.put(b"probe")
    for i in range(1, probe):
        reply, stats = srv.cmd(f"stats-job {i}")
        if stats is None:
            lines.append(f"job {i} absent")
            continue
        s = dict(l.split(": ", 1) for l in stats.decode().splitlines()[1:])
        _, body = srv.cmd(f"peek {i}")
        keys = ["state", "pri", "tube", "ttr", "reserves", "timeouts", "releases", "buries", "kicks"]
        lines.append(f"job {i} " + " ".join(f"{k}={s[k]}" for k in keys) + f" body={body.hex()}")
    lines.append(f"next-id {probe}")
    srv.crash()
    shutil.rmtree(scratch)
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def save(directory, name):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.mkdir(out)
    for f in sorted(os.listdir(directory)):
        if f.startswith("binlog."):
            shutil.copy(os.path.join(directory, f), out)
            os.chmod(os.path.join(out, f), 0o644)
    expected(out, os.path.join(HERE, name + ".expected"))


def run(name, *steps):
    directory = tempfile.mkdtemp()
    for step in steps:
        srv = Server(directory)
        step(srv)
        time.sleep(0.1)
        srv.crash()
    save(directory, name)
    shutil.rmtree(directory)


if __name__ == "__main__":
    print(subprocess.run([BEANSTALKD, "-v"], capture_output=True, text=True).stdout.strip())
    run("session", scenario_session)
    run("rotation", scenario_rotation)
    run("restart", scenario_restart_first, scenario_restart_second)
