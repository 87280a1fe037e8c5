"""Child processes of the benchmark: long-running ones (brokers, the S3
server) stopped again at exit, and client runs timed with their CPU use."""

import resource
import signal
import socket
import subprocess
import sys
import time

from .metrics import cpu_seconds


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



# ---- processes ---------------------------------------------------------------

STARTED = []  # every long-running process this script started


def start_process(args, log_path, cwd=None, env=None):
    out = open(log_path, "ab")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, env=env, start_new_session=True)
    out.close()
    STARTED.append(proc)
    return proc


def stop_process(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop_process(proc, timeout=30)


class Failed(Exception):
    pass


def run_client(args, timeout, log_path, broker_pid=None):
    """Runs a client to completion; returns (stdout, usage) where usage has the
    client's CPU seconds, its wall time and, given broker_pid, the broker's CPU
    seconds over the same time, each also as cores (CPU seconds per second)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker0 = cpu_seconds(broker_pid) if broker_pid else None
    t0 = time.time()
    with open(log_path, "ab") as err:
        err.write(("\n$ %s\n" % " ".join(args)).encode())
        err.flush()
        try:
            done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failed("%s timed out after %d s" % (args[-1] if args else "?", timeout))
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    usage = {"client_wall_s": wall, "client_cpu_s": cpu, "client_cores": cpu / wall}
    if broker_pid:
        usage["broker_cpu_s"] = cpu_seconds(broker_pid) - broker0
        usage["broker_cores"] = usage["broker_cpu_s"] / wall
    out = done.stdout.decode(errors="replace")
    with open(log_path, "a") as err:
        err.write(out)
    if done.returncode != 0:
        raise Failed("exit status %d (see %s)" % (done.returncode, log_path))
    return out, usage
