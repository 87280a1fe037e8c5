"""Shared helpers of the Python compat runners: start a fresh StreamHouse broker
on a free port with a fresh data dir (and, for the pg-s3 backend pair, a fresh
PostgreSQL database and a fresh S3 key prefix), stop or SIGKILL it, restart it
on the same port and state, and record scenario results for run_all.sh.

Backend pairs (COMPAT_BACKENDS, default "embedded pg-s3"):
  embedded  streamhouse --listen 127.0.0.1:PORT --data-dir DIR
            (SQLite catalog DIR/catalog.db, objects under DIR/objects)
  pg-s3     the same plus --catalog postgres://.../<fresh db>
            --store 's3://streamhouse-test?endpoint=...&prefix=<unique>'
            (COMPAT_S3_MODE=bucket uses a fresh bucket instead of a prefix)

Environment read: STREAMHOUSE_BIN (default $CARGO_TARGET_DIR/debug/streamhouse),
STREAMHOUSE_CACHE, STREAMHOUSE_TEST_POSTGRES_URL, STREAMHOUSE_TEST_S3_URL,
COMPAT_RUN_DIR (where broker dirs and logs go), COMPAT_RESULTS (file that
PASS/FAIL lines are appended to), COMPAT_KEEP=1 (keep data dirs and databases),
COMPAT_AGENTS (new_broker starts a Cluster of that many agents instead of one
broker when above 1), COMPAT_AGENT_LEASE_MS (the agents' --agent-lease-ms,
default 2000; empty: no such flag).

A Cluster is N agents (processes) on N ports sharing one data dir, and for
pg-s3 one database and one store prefix; it offers what a Broker does
(bootstrap lists every agent) plus agents[i] to stop, kill or restart one.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid

CACHE = os.environ.get("STREAMHOUSE_CACHE", "/var/cache/streamhouse-ci")
ALL_BACKENDS = ("embedded", "pg-s3")
READY_TIMEOUT_S = 30.0


class BrokerError(Exception):
    pass


def broker_binary():
    explicit = os.environ.get("STREAMHOUSE_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(CACHE, "target")
    return os.path.join(target, "debug", "streamhouse")


def backends():
    names = os.environ.get("COMPAT_BACKENDS", " ".join(ALL_BACKENDS)).split()
    for n in names:
        if n not in ALL_BACKENDS:
            raise ValueError("unknown backend %r in COMPAT_BACKENDS (known: %s)" % (n, ", ".join(ALL_BACKENDS)))
    return names


def unique(prefix):
    """A name no other run uses: prefix, time of day, random hex."""
    return "%s-%s-%s" % (prefix, time.strftime("%H%M%S"), uuid.uuid4().hex[:8])


def run_dir():
    d = os.environ.get("COMPAT_RUN_DIR")
    if not d:
        d = os.path.join(CACHE, "compat-runs", unique("py"))
        os.environ["COMPAT_RUN_DIR"] = d
    os.makedirs(d, exist_ok=True)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(status, name, detail="", echo=True):
    """Prints and appends one scenario result; run_all.sh counts these lines."""
    assert status in ("PASS", "FAIL")
    line = "%s %s" % (status, name)
    if echo:
        print(line + (": " + detail if detail else ""), flush=True)
    path = os.environ.get("COMPAT_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _pg_admin_url():
    url = os.environ.get("STREAMHOUSE_TEST_POSTGRES_URL")
    if not url:
        raise BrokerError("pg-s3 backend: STREAMHOUSE_TEST_POSTGRES_URL is not set "
                          "(eval \"$(scripts/services.sh start)\")")
    return url


def _psql(sql):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _pg_admin_url(), "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise BrokerError("psql %r failed: %s" % (sql, r.stderr.strip()))
    return r.stdout


def _with_db(url, db):
    p = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


def _s3_base_url():
    url = os.environ.get("STREAMHOUSE_TEST_S3_URL")
    if not url:
        raise BrokerError("pg-s3 backend: STREAMHOUSE_TEST_S3_URL is not set "
                          "(eval \"$(scripts/services.sh start)\")")
    return url


def s3_client():
    import boto3  # only the pg-s3 backend needs it
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(_s3_base_url()).query)
    return boto3.client("s3", endpoint_url=q["endpoint"][0], region_name=q.get("region", ["us-east-1"])[0],
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))


def broker_env():
    """The environment a broker starts with: without STREAMHOUSE_* settings a
    developer may have exported (flags are what the tests mean;
    STREAMHOUSE_LOG and STREAMHOUSE_CACHE stay), and without colour codes in
    its log file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMHOUSE_") or k in ("STREAMHOUSE_LOG", "STREAMHOUSE_CACHE")}
    env["NO_COLOR"] = "1"
    return env


class Broker:
    """One broker process with its own data dir, and for pg-s3 its own database
    and key prefix. start() may be called again after stop()/kill9(): the broker
    comes back on the same port with the same data dir, catalog and store."""

    def __init__(self, backend, name, extra_args=()):
        if backend not in ALL_BACKENDS:
            raise ValueError(backend)
        self.backend = backend
        self.name = unique(name)
        self.dir = os.path.join(run_dir(), self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None
        self.db = None
        self.bucket = None
        self.s3_prefix = None
        self.backend_args = None
        self.starts = 0

    # -- lifecycle ---------------------------------------------------------

    def _prepare_backend(self):
        if self.backend == "embedded":
            return []
        self.db = "shcompat_" + self.name.replace("-", "_").lower()
        _psql('CREATE DATABASE "%s"' % self.db)
        catalog = _with_db(_pg_admin_url(), self.db)
        base = _s3_base_url()
        if os.environ.get("COMPAT_S3_MODE", "prefix") == "bucket":
            self.bucket = ("sh-" + self.name.lower())[:63]
            s3_client().create_bucket(Bucket=self.bucket)
            p = urllib.parse.urlsplit(base)
            store = urllib.parse.urlunsplit((p.scheme, self.bucket, p.path, p.query, p.fragment))
        else:
            self.bucket = urllib.parse.urlsplit(base).netloc
            self.s3_prefix = "compat/" + self.name
            store = base + ("&" if "?" in base else "?") + "prefix=" + self.s3_prefix
        return ["--catalog", catalog, "--store", store]

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def command(self):
        return ([broker_binary(), "--listen", self.bootstrap, "--data-dir", self.data_dir]
                + self.backend_args + self.extra_args)

    def start(self):
        binary = broker_binary()
        if not os.access(binary, os.X_OK):
            raise BrokerError("broker binary %s missing (cargo build, or set STREAMHOUSE_BIN)" % binary)
        os.makedirs(self.data_dir, exist_ok=True)
        if self.backend_args is None:
            self.backend_args = self._prepare_backend()
        if self.port is None:
            self.port = free_port()
        cmd = self.command()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("=== start #%d at %s: %s\n" % (self.starts, time.strftime("%H:%M:%S"),
                                                     " ".join(cmd))).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=broker_env(),
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise BrokerError("broker exited with status %s before accepting connections on %s\n"
                                  "command: %s\n--- %s (tail) ---\n%s"
                                  % (rc, self.bootstrap, " ".join(self.command()), self.log_path, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.kill9()
        raise BrokerError("broker did not accept connections on %s within %.0f s\ncommand: %s\n"
                          "--- %s (tail) ---\n%s" % (self.bootstrap, READY_TIMEOUT_S,
                                                     " ".join(self.command()), self.log_path, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL
            self.proc.wait()

    def storage_check(self, timeout=300):
        """(exit status, output) of `streamctl storage check` on this broker's
        catalog and store (streamctl is built beside the broker binary). Run it
        with the broker stopped: a compaction swap and garbage collection
        between reading an entry and its object would read as a missing one."""
        streamctl = os.path.join(os.path.dirname(broker_binary()), "streamctl")
        cmd = [streamctl, "storage", "--data-dir", self.data_dir] + (self.backend_args or []) + ["check"]
        try:
            done = subprocess.run(cmd, env=broker_env(), capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            return -1, str(e)
        return done.returncode, (done.stdout + done.stderr).strip()

    def cleanup(self, keep=False):
        """Stops the broker; unless keep (or COMPAT_KEEP=1) removes its data dir
        and database. The log stays in the run dir."""
        self.stop()
        if keep or os.environ.get("COMPAT_KEEP") == "1":
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.db:
            try:
                _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db)
            except BrokerError:
                pass

    # -- inspection --------------------------------------------------------

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(data[-lines:])

    def s3_keys(self):
        """Keys this broker's store holds in the bucket (pg-s3 only)."""
        s3 = s3_client()
        keys = []
        kwargs = {"Bucket": self.bucket}
        if self.s3_prefix:
            kwargs["Prefix"] = self.s3_prefix
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def pg_tables(self):
        out = _psql_in(self.db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        return int(out.strip())


def _psql_in(db, sql):
    r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", _with_db(_pg_admin_url(), db),
                        "-c", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise BrokerError("psql %r failed: %s" % (sql, r.stderr.strip()))
    return r.stdout


def agents_wanted():
    return int(os.environ.get("COMPAT_AGENTS") or "1")


def new_broker(backend, name, extra_args=()):
    """A Broker, or a Cluster of COMPAT_AGENTS agents when that is above 1."""
    n = agents_wanted()
    return Cluster(backend, name, n, extra_args) if n > 1 else Broker(backend, name, extra_args)


class ClusterNotFormed(BrokerError):
    pass


class Cluster:
    """N agents sharing one catalog and store. start() starts every agent that
    is not running, then waits until Metadata through every agent lists all
    of them (ClusterNotFormed if not within FORM_TIMEOUT_S; the agents keep
    running). Node ids come from registration, in no fixed order:
    index_of_port maps a broker to its agent. agents[i] is a Broker:
    agents[i].kill9() and .start() restart one on its port."""

    FORM_TIMEOUT_S = 20.0

    def __init__(self, backend, name, agents=3, extra_args=()):
        self.backend = backend
        self.name = unique(name)
        self.dir = os.path.join(run_dir(), self.name)
        self.data_dir = os.path.join(self.dir, "data")
        lease = os.environ.get("COMPAT_AGENT_LEASE_MS", "2000")
        args = (["--agent-lease-ms", lease] if lease else []) + list(extra_args)
        self.agents = []
        ports = set()
        for i in range(agents):
            a = Broker(backend, name, args)
            a.name, a.dir, a.data_dir = self.name, self.dir, self.data_dir
            a.log_path = os.path.join(self.dir, "agent-%d.log" % i)
            while a.port is None or a.port in ports:
                a.port = free_port()
            ports.add(a.port)
            self.agents.append(a)
        self.db = self.bucket = self.s3_prefix = None

    @property
    def bootstrap(self):
        return ",".join(a.bootstrap for a in self.agents)

    @property
    def log_path(self):
        return " ".join(a.log_path for a in self.agents)

    @property
    def proc(self):
        """The process of the first agent that is not running (else agent 0's)."""
        return next((a.proc for a in self.agents if not a.running()), self.agents[0].proc)

    def index_of_port(self, port):
        return next(i for i, a in enumerate(self.agents) if a.port == port)

    def start(self):
        first = self.agents[0]
        if first.backend_args is None:
            os.makedirs(self.data_dir, exist_ok=True)
            backend_args = first._prepare_backend()
            self.db, self.bucket, self.s3_prefix = first.db, first.bucket, first.s3_prefix
            for a in self.agents:
                a.backend_args = backend_args
        for a in self.agents:
            if not a.running():
                a.start()
        self.wait_formed()
        return self

    def listed(self, agent, timeout=5.0):
        """host:port of every broker Metadata through that agent lists, sorted."""
        from confluent_kafka.admin import AdminClient  # the venv's; only clusters need it
        admin = AdminClient({"bootstrap.servers": agent.bootstrap})
        md = admin.list_topics(timeout=timeout)
        return sorted("%s:%d" % (b.host, b.port) for b in md.brokers.values())

    def wait_formed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.FORM_TIMEOUT_S)
        while True:
            live = [a for a in self.agents if a.running()]
            want = sorted(a.bootstrap for a in live)
            seen = {}
            for a in live:
                try:
                    seen[a.bootstrap] = self.listed(a)
                except Exception as e:  # noqa: BLE001 - not answering yet is not formed yet
                    seen[a.bootstrap] = "error: %s" % e
            if all(v == want for v in seen.values()):
                return
            if time.monotonic() > deadline:
                raise ClusterNotFormed("the cluster did not form within %.0f s: live agents %s; %s"
                                       % (timeout or self.FORM_TIMEOUT_S, want,
                                          "; ".join("%s lists %s" % kv for kv in sorted(seen.items()))))
            time.sleep(0.3)

    def running(self):
        return all(a.running() for a in self.agents)

    def stop(self, timeout=10.0):
        """SIGTERM to every agent at once, SIGKILL after `timeout` seconds."""
        for a in self.agents:
            if a.running():
                a.proc.send_signal(signal.SIGTERM)
        for a in self.agents:
            a.stop(timeout)

    def kill9(self):
        for a in self.agents:
            a.kill9()

    def cleanup(self, keep=False):
        self.stop()
        if keep or os.environ.get("COMPAT_KEEP") == "1":
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.db:
            try:
                _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db)
            except BrokerError:
                pass

    def log_tail(self, lines=30):
        return "\n".join("--- agent %d (%s) ---\n%s" % (i, a.log_path, a.log_tail(lines))
                         for i, a in enumerate(self.agents))

    def s3_keys(self):
        return self.agents[0].s3_keys()

    def pg_tables(self):
        return self.agents[0].pg_tables()
