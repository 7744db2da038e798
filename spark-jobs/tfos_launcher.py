"""tfjs-on-spark launcher: the Spark driver program that every route submits unchanged.

It is a thin agent of the Node driver (the process that called TFCluster.run):

1. Reads its one-time bootstrap token (a file, or a Spark property on Livy), exchanges it with the
   driver's control server for the cluster secret (the token never crosses the wire and works
   once), then fetches the job spec; every request and answer is authenticated both ways.
2. Starts a SparkContext and waits until Spark offers enough task slots for all nodes at once.
3. Runs the node stage in barrier mode: one task per TF node, all started together or none.
   Each task starts one Node trainer, relays its output to the executor log and to the driver,
   and ends with the trainer, raising the trainer's error text if it failed.
4. Meanwhile polls the driver for commands (shutdown, and feeds for InputMode.SPARK), and stops
   everything when the driver says so or can no longer be reached.

What it reads from the driver (the job spec, each command) is checked against the field lists in
protocol.json beside this file, the schema the Node driver loads too (lib/protocol/launcher.ts).

Only the Python standard library and pyspark are used, so any Spark cluster can run it.
"""

import argparse
import contextlib
import hashlib
import hmac as hmac_mod
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# How long the driver may be unreachable (connection refused or reset, no route: its process or
# its host is gone) before the launcher gives up and stops the cluster.
DRIVER_LOST_SEC = 20
# How long a driver that accepts connections but does not answer is waited for: its process is
# alive and its event loop busy (a long synchronous call in the user's program, a long GC).
DRIVER_SILENT_SEC = 180


# ---------------------------------------------------------------------------------------------
# Control-channel authentication (lib/protocol/control-auth.ts holds the same strings).
# ---------------------------------------------------------------------------------------------

UNSIGNED_STREAM = "UNSIGNED-STREAM"


def _mac(key, text):
    return hmac_mod.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_request(secret, method, path, body=b"", ts=None, nonce=None):
    """(Authorization header, nonce) for one request; body=UNSIGNED_STREAM for a streamed body."""
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = os.urandom(16).hex() if nonce is None else nonce
    digest = UNSIGNED_STREAM if body is UNSIGNED_STREAM else hashlib.sha256(body or b"").hexdigest()
    mac = _mac(secret, "tfos-control/2 request\n%s\n%s\n%d\n%s\n%s" % (method.upper(), path, ts, nonce, digest))
    return "TFOS-HMAC ts=%d,nonce=%s,body=%s,mac=%s" % (ts, nonce, digest, mac), nonce


def response_ok(secret, nonce, status, body, mac):
    expected = _mac(secret, "tfos-control/2 response\n%s\n%d\n%s" % (nonce, status, hashlib.sha256(body or b"").hexdigest()))
    return bool(mac) and hmac_mod.compare_digest(expected, mac)


def bootstrap_request(token, ts=None, nonce=None):
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = os.urandom(16).hex() if nonce is None else nonce
    return {"ts": ts, "nonce": nonce, "proof": _mac(token, "tfos-bootstrap/1 client\n%d\n%s" % (ts, nonce))}


class DriverNotProven(Exception):
    pass


def exchange_token(control_url, token, timeout=30):
    """The launcher's first request: the one-time bootstrap token buys the cluster secret."""
    req = bootstrap_request(token)
    http_req = urllib.request.Request(
        control_url.rstrip("/") + "/v1/launcher/bootstrap", data=json.dumps(req).encode("utf-8"), method="POST"
    )
    http_req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(http_req, timeout=timeout) as res:
            answer = json.loads(res.read())
    except urllib.error.HTTPError as err:
        raise SystemExit(
            "tfos-launcher: the driver at %s refused the bootstrap token (HTTP %d: %s); it works only once"
            % (control_url, err.code, err.read()[:200].decode("utf-8", "replace"))
        )
    return open_bootstrap_answer(token, req, answer)


def open_bootstrap_answer(token, req, answer):
    """The cluster secret from the driver's answer, after checking the driver's proof of the token."""
    if not hmac_mod.compare_digest(_mac(token, "tfos-bootstrap/1 server\n%s" % req["nonce"]), str(answer.get("proof", ""))):
        raise SystemExit("tfos-launcher: the driver could not prove the bootstrap token; refusing to take orders from it")
    sealed = bytes.fromhex(answer["sealed"])
    stream = b""
    i = 0
    while len(stream) < len(sealed):
        stream += bytes.fromhex(_mac(token, "tfos-bootstrap/1 seal\n%s\n%d" % (req["nonce"], i)))
        i += 1
    return bytes(a ^ b for a, b in zip(sealed, stream)).decode("utf-8")


class Control:
    """HTTP client of the driver's control server: signed requests, answers checked."""

    def __init__(self, url, secret):
        self.url = url.rstrip("/")
        self.secret = secret

    def _request(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        header, nonce = sign_request(self.secret, method, path, data or b"")
        req.add_header("Authorization", header)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            # Only the real driver can sign its answer: nobody else hands us a job or a command.
            if not response_ok(self.secret, nonce, res.status, raw, res.headers.get("X-TFOS-MAC")):
                raise DriverNotProven(
                    "the server at %s could not prove the cluster secret in its answer to %s %s" % (self.url, method, path.split("?")[0])
                )
            return json.loads(raw) if raw else None

    def job(self):
        return self._request("GET", "/v1/launcher/job")

    def event(self, ev):
        try:
            self._request("POST", "/v1/launcher/event", ev)
        except Exception as err:  # the driver may be gone; the executor logs still tell
            log("could not send event %s to the driver: %s" % (ev.get("type"), err))

    def phase(self, phase, feed_id=None, ago_ms=None):
        """A start-up or feed-start phase reached now (or ago_ms earlier); the driver times it on its clock."""
        ev = {"type": "phase", "phase": phase}
        if feed_id is not None:
            ev["feedId"] = feed_id
        if ago_ms is not None:
            ev["agoMs"] = ago_ms
        self.event(ev)

    def command(self, wait_sec):
        return self._request("GET", "/v1/launcher/command?wait=%d" % wait_sec, timeout=wait_sec + 15)

    def protocol(self):
        return self._request("GET", "/v1/launcher/protocol")


# ---------------------------------------------------------------------------------------------
# The protocol schema (protocol.json) and checks against it
# ---------------------------------------------------------------------------------------------


class ProtocolError(Exception):
    pass


def load_protocol(ctl):
    """protocol.json beside this file; a launcher shipped alone (Livy session, an hdfs:// copy) asks the driver."""
    here = globals().get("__file__")
    if here:
        path = os.path.join(os.path.dirname(os.path.abspath(here)), "protocol.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return ctl.protocol()


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def check_fields(what, msg, fields, ignore=()):
    """Required fields present, types right, no unknown field; ProtocolError names the field."""
    if not isinstance(msg, dict):
        raise ProtocolError("%s: not a JSON object" % what)
    for name, spec in fields.items():
        optional = spec.endswith("?")
        kind = spec[:-1] if optional else spec
        value = msg.get(name)
        if value is None:
            if not optional:
                raise ProtocolError("%s: missing field '%s'" % (what, name))
            continue
        if not _TYPES[kind](value):
            raise ProtocolError("%s: field '%s' must be %s, got %r" % (what, name, kind, value))
    for name in msg:
        if name not in fields and name not in ignore:
            raise ProtocolError("%s: unknown field '%s'" % (what, name))


def check_job(schema, job):
    check_fields("job spec", job, schema["job"])
    if job["protocol"] != schema["version"]:
        raise ProtocolError(
            "the driver speaks protocol %d, this launcher %d: use the launcher of the same tfjs-on-spark version"
            % (job["protocol"], schema["version"])
        )


def check_command(schema, cmd):
    if not isinstance(cmd, dict) or cmd.get("type") not in schema["commands"]:
        raise ProtocolError(
            "command: unknown type %r (known: %s)" % (cmd.get("type") if isinstance(cmd, dict) else cmd, ", ".join(schema["commands"]))
        )
    check_fields("command '%s'" % cmd["type"], cmd, schema["commands"][cmd["type"]], ignore=("type",))
    if cmd["type"] == "feed":
        check_fields("feed command's feed", cmd["feed"], schema["feed"])
    return cmd


def log(msg):
    sys.stderr.write("[tfos-launcher] %s\n" % msg)
    sys.stderr.flush()


def read_token(path):
    candidates = [path]
    try:  # shipped with --files on a real cluster: look in SparkFiles' folder too
        from pyspark import SparkFiles

        candidates.append(os.path.join(SparkFiles.getRootDirectory(), os.path.basename(path)))
    except Exception:
        pass
    for p in candidates:
        if p and os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    raise SystemExit("tfos-launcher: bootstrap token file %s not found" % path)


# ---------------------------------------------------------------------------------------------
# Executor side: the node task. Defined here and shipped by value with the closure.
# ---------------------------------------------------------------------------------------------


def process_started_ms(pid="self"):
    """When a process started, in ms since the epoch on this host's clock (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            # Field 22 (starttime, clock ticks after boot); the command name in (...) may hold spaces.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return int(time.time() * 1000 - (uptime - start_ticks / os.sysconf("SC_CLK_TCK")) * 1000)
    except Exception:
        return None


def python_worker_started_ms():
    """When the executor asked for this task's Python worker: its pyspark daemon's start when the
    worker was forked from one (the daemon boots on an executor's first Python task), else its own."""
    try:
        with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
            if b"pyspark.daemon" in f.read():
                return process_started_ms(os.getppid())
    except Exception:
        pass
    return process_started_ms()


def make_node_task(control_url, secret, job):
    trainer_command = job["trainerCommand"]
    trainer_env = job["trainerEnv"]
    roles = job["roles"]
    gpus_per_node = job.get("gpusPerNode", 0)

    def spark_internal(name):
        return name.startswith(("SPARK_", "_SPARK_", "PYSPARK_", "PYTHON_WORKER_FACTORY")) or "SECRET" in name.upper()

    def set_parent_death_signal():
        # The trainer dies with its task's Python worker even if that worker is SIGKILLed.
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except Exception:
            pass

    class LogRelay(object):
        """Streams the trainer's output lines to the driver as one chunked HTTP POST."""

        def __init__(self, node, attempt):
            self.conn = None
            self.lock = threading.Lock()
            try:
                u = urllib.parse.urlparse(control_url)
                self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                path = "/v1/launcher/log?node=%d&attempt=%d" % (node, attempt)
                self.conn.putrequest("POST", path)
                self.conn.putheader("Authorization", sign_request(secret, "POST", path, UNSIGNED_STREAM)[0])
                self.conn.putheader("Transfer-Encoding", "chunked")
                self.conn.putheader("Content-Type", "text/plain; charset=utf-8")
                self.conn.endheaders()
            except Exception as err:
                sys.stderr.write("[tfos] log relay to driver unavailable: %s\n" % err)
                self.conn = None

        def send(self, line):
            if self.conn is None:
                return
            data = line.encode("utf-8", "replace")
            with self.lock:
                try:
                    self.conn.send(b"%x\r\n%s\r\n" % (len(data), data))
                except Exception:
                    self.conn = None

        def close(self):
            with self.lock:
                if self.conn is None:
                    return
                try:
                    self.conn.send(b"0\r\n\r\n")
                    self.conn.getresponse().read()
                    self.conn.close()
                except Exception:
                    pass
                self.conn = None

    def run_node(_iterator):
        task_started_ms = int(time.time() * 1000)
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        index = ctx.partitionId()
        attempt = ctx.attemptNumber()
        role = roles[index]
        label = "%s:%d" % (role["job"], role["taskIndex"])
        # A clean environment: none of Spark's internals (PYTHON_WORKER_FACTORY_SECRET authenticates
        # this Python worker to its executor; _SPARK_AUTH_SECRET, SPARK_*/PYSPARK_* settings).
        env = {k: v for k, v in os.environ.items() if not spark_internal(k)}
        own_library_path = env.get("LD_LIBRARY_PATH", "")
        env.update(trainer_env)
        # The run's library folders (the GPU build's CUDA libraries) go before the executor's own.
        if "LD_LIBRARY_PATH" in trainer_env and own_library_path:
            env["LD_LIBRARY_PATH"] = trainer_env["LD_LIBRARY_PATH"] + ":" + own_library_path
        # In standalone mode an executor's working directory is .../<app-id>/<executor-id>; on YARN
        # the executor is its container.
        cwd = os.getcwd()
        if os.path.basename(os.path.dirname(cwd)).startswith("app-"):
            executor_id = os.path.basename(cwd)
        else:
            executor_id = os.environ.get("CONTAINER_ID") or "driver"
        env.update(
            {
                "TFOS_CONTROL_URL": control_url,
                "TFOS_NODE_INDEX": str(index),
                "TFOS_ATTEMPT": str(attempt),
                "TFOS_EXECUTOR_ID": executor_id,
                "TFOS_STAGE_ID": str(ctx.stageId()),
                # Start-up phases on this host's clock; the trainer reports them as ages when it registers.
                "TFOS_TASK_STARTED_MS": str(task_started_ms),
                "TFOS_PYTHON_STARTED_MS": str(python_worker_started_ms() or task_started_ms),
            }
        )
        # GPUs come from Spark's resource scheduling; ps nodes get none.
        try:
            gpus = ctx.resources().get("gpu")
        except Exception:
            gpus = None
        if role["job"] == "ps" or gpus_per_node == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.addresses)
        proc = subprocess.Popen(
            trainer_command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=set_parent_death_signal,
        )
        # The secret goes through a pipe: not in argv, env or a file.
        proc.stdin.write((secret + "\n").encode("utf-8"))
        proc.stdin.close()
        relay = LogRelay(index, attempt)
        tail = []
        tail_lock = threading.Lock()

        def pump(stream, keep_tail):
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                sys.stderr.write("[%s] %s\n" % (label, line))
                relay.send(line + "\n")
                if keep_tail:
                    with tail_lock:
                        tail.append(line)
                        del tail[:-40]
            stream.close()

        pumps = [threading.Thread(target=pump, args=(proc.stdout, False)), threading.Thread(target=pump, args=(proc.stderr, True))]
        for t in pumps:
            t.daemon = True
            t.start()
        try:
            code = proc.wait()
        except BaseException:
            # Task interrupted (job cancelled): take the trainer's whole process group down.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except Exception:
                pass
            raise
        finally:
            for t in pumps:
                t.join(5)
            relay.close()
        if code != 0:
            with tail_lock:
                detail = "\n".join(tail[-20:])
            raise RuntimeError("TF node %d (%s) exited with code %d:\n%s" % (index, label, code, detail))
        yield {"nodeIndex": index, "exitCode": code}

    return run_node


# ---------------------------------------------------------------------------------------------
# Executor side: feeding tasks (InputMode.SPARK). One barrier task per worker per epoch; each
# streams its share of the data to one trainer as Arrow IPC, and for inference reads the
# trainer's predictions back. docs/data.md describes the wire format.
# ---------------------------------------------------------------------------------------------


def make_feed_task(secret, feed, epoch, result_schema=None):
    targets = feed["targets"]
    kind = feed["kind"]
    stall = float(feed.get("stallTimeoutSec", 600))
    key_column = feed.get("keyColumn", "id")
    feed_id = feed["feedId"]

    def recv_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("trainer closed the connection")
            buf += chunk
        return buf

    def feed_partition(batches):
        import hashlib
        import hmac
        import socket
        import struct
        from collections import deque

        import pyarrow as pa
        from pyspark import TaskContext

        tctx = TaskContext.get()
        worker = tctx.partitionId()
        host, port = targets[worker]
        where = "feed %s epoch %d, worker %d (%s:%d), Spark partition %d of stage %d" % (
            feed_id,
            epoch,
            worker,
            host,
            port,
            worker,
            tctx.stageId(),
        )
        sock = socket.create_connection((host, port), timeout=stall)
        try:
            # Mutual proof over both nonces and the header (docs/data.md): no data goes to a
            # listener that cannot prove the cluster secret.
            key = secret.encode("utf-8")
            nonce_s = recv_exact(sock, 16)
            nonce_c = os.urandom(16)
            header = json.dumps({"feedId": feed_id, "kind": kind, "epoch": epoch, "worker": worker}).encode("utf-8")
            signed = nonce_s + nonce_c + header
            sock.sendall(
                nonce_c + struct.pack(">I", len(header)) + header + hmac.new(key, b"tfos-feed/2 client\0" + signed, hashlib.sha256).digest()
            )
            try:
                answer = recv_exact(sock, 32)
            except ConnectionError:
                raise RuntimeError("%s: the trainer refused the feed connection (authentication failed)" % where)
            if not hmac.compare_digest(answer, hmac.new(key, b"tfos-feed/2 server\0" + signed, hashlib.sha256).digest()):
                raise RuntimeError("%s: the listener at %s:%d could not prove the cluster secret; no data sent" % (where, host, port))
            sink = sock.makefile("wb")
            writer = None
            rows_sent = 0
            keys = deque()
            terminated = False
            try:
                for batch in batches:
                    if writer is None:
                        writer = pa.ipc.new_stream(sink, batch.schema)
                    if kind == "infer":
                        if key_column not in batch.schema.names:
                            raise ValueError(
                                "inference input has no key column '%s' (columns: %s)" % (key_column, ", ".join(batch.schema.names))
                            )
                        keys.append(batch.column(key_column))
                    writer.write_batch(batch)
                    rows_sent += batch.num_rows
                if writer is not None:
                    writer.close()
                sink.flush()
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                # Either the trainer terminated the feed (it said 'T' first) or it crashed.
                terminated = True
            except socket.timeout:
                raise RuntimeError("%s: the trainer took no data for %d s (stalled feed)" % (where, stall))
            crashed = "%s: the trainer's connection broke after %d rows without an acknowledgement: the trainer crashed or was killed" % (
                where,
                rows_sent,
            )
            if kind == "train":
                # The trainer answers once it has taken every row: 'D' + rows, or 'T' when it terminated early.
                try:
                    status = recv_exact(sock, 9)
                except socket.timeout:
                    raise RuntimeError("%s: no acknowledgement from the trainer within %d s (stalled feed)" % (where, stall))
                except (ConnectionError, OSError):
                    raise RuntimeError(crashed)
                code, rows = status[:1], struct.unpack(">Q", status[1:])[0]
                if code not in (b"D", b"T"):
                    raise RuntimeError("%s: unexpected acknowledgement %r from the trainer" % (where, code))
                yield pa.RecordBatch.from_pydict(
                    {"worker": [worker], "rows": [rows_sent], "taken": [rows], "terminated": [code == b"T"]},
                    schema=pa.schema([("worker", pa.int32()), ("rows", pa.int64()), ("taken", pa.int64()), ("terminated", pa.bool_())]),
                )
                return
            # Inference: frames of [u32 length][Arrow IPC stream], length 0 ends; one result row per input row, in order.
            if terminated:
                raise RuntimeError(crashed)
            target = result_schema
            returned = 0
            pending = None
            while True:
                try:
                    (length,) = struct.unpack(">I", recv_exact(sock, 4))
                except socket.timeout:
                    raise RuntimeError("%s: no inference results for %d s (stalled)" % (where, stall))
                except (ConnectionError, OSError):
                    raise RuntimeError(crashed)
                if length == 0:
                    break
                try:
                    body = recv_exact(sock, length)
                except (ConnectionError, OSError):
                    raise RuntimeError(crashed)
                table = pa.ipc.open_stream(body).read_all()
                for rb in table.to_batches():
                    n = rb.num_rows
                    ids = []
                    while n > 0:
                        if pending is None:
                            if not keys:
                                raise RuntimeError("%s: the trainer returned more results than the %d input rows" % (where, rows_sent))
                            pending = keys.popleft()
                        take = min(n, len(pending))
                        ids.append(pending.slice(0, take))
                        pending = pending.slice(take) if take < len(pending) else None
                        n -= take
                    cols = {key_column: pa.concat_arrays(ids) if ids else pa.array([], pa.int64())}
                    for name in rb.schema.names:
                        if name != key_column:
                            cols[name] = rb.column(name)
                    out = pa.Table.from_pydict(cols)
                    out = out.select([f.name for f in target]).cast(target)
                    returned += out.num_rows
                    for ob in out.to_batches():
                        yield ob
            if returned != rows_sent:
                raise RuntimeError("%s: %d input rows but %d inference results" % (where, rows_sent, returned))
        finally:
            try:
                sock.close()
            except Exception:
                pass

    return feed_partition


def _ddl_to_arrow(ddl):
    """'id long, prediction int, probs array<float>' -> pyarrow schema, via Spark's own parser."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    return to_arrow_schema(_parse_datatype_string(ddl))


TRAIN_ACK_SCHEMA = "worker int, rows long, taken long, terminated boolean"

# Rows per Arrow batch Spark hands a feeding task. Spark's default (10,000: 30 MB of CIFAR-10
# images) is what a trainer waits for before its first batch. Measured on 60,000 CIFAR rows:
# 5,000 halves the wait for the first batch and keeps the whole feed's time (2,000 cost 1.7x the
# streaming time). Set only while feeds run, and never over a user's value.
FEED_ARROW_BATCH_ROWS = "5000"
_ARROW_BATCH_KEY = "spark.sql.execution.arrow.maxRecordsPerBatch"
_feed_conf_lock = threading.Lock()
_feeds_holding_conf = 0


@contextlib.contextmanager
def feed_arrow_batches(spark):
    global _feeds_holding_conf
    with _feed_conf_lock:
        ours = _feeds_holding_conf > 0 or spark.conf.get(_ARROW_BATCH_KEY, None) is None
        if ours:
            if _feeds_holding_conf == 0:
                spark.conf.set(_ARROW_BATCH_KEY, FEED_ARROW_BATCH_ROWS)
            _feeds_holding_conf += 1
    try:
        yield
    finally:
        if ours:
            with _feed_conf_lock:
                _feeds_holding_conf -= 1
                if _feeds_holding_conf == 0:
                    spark.conf.unset(_ARROW_BATCH_KEY)


def run_feed(spark, secret, feed, ctl):
    """One feed: every epoch, each worker's share of the data streams to it from one barrier task."""
    try:
        workers = len(feed["targets"])
        if feed.get("dataFrame"):
            # In a Livy session the launcher runs in the session's namespace: feed a DataFrame
            # the notebook defined there, by name.
            df = globals().get(feed["dataFrame"])
            if df is None or not hasattr(df, "mapInArrow"):
                raise ValueError(
                    "no DataFrame named '%s' in this Spark session (define it in the Livy session before TFCluster.run)" % feed["dataFrame"]
                )
        else:
            df = spark.read.format(feed.get("format", "parquet")).load(feed["path"])
        if feed.get("columns"):
            df = df.select(*feed["columns"])
        ctl.phase("feed-opened", feed["feedId"])
        group = "tfos-feed-" + feed["feedId"]
        spark.sparkContext.setJobGroup(group, "tfjs-on-spark feed %s" % feed["feedId"], interruptOnCancel=True)
        with feed_arrow_batches(spark):
            feed_stages(spark, secret, df, feed, ctl, workers)
        ctl.event({"type": "feed-done", "feedId": feed["feedId"]})
    except BaseException as err:  # noqa: B902 - the driver decides what a failed feed means
        ctl.event({"type": "feed-failed", "feedId": feed["feedId"], "error": short_error(err, feed.get("targets"))})


def feed_stages(spark, secret, df, feed, ctl, workers):
    """The Spark jobs of one feed: one per epoch for training, one writing the results for inference."""
    if feed["kind"] == "train":
        for epoch in range(int(feed.get("epochs", 1))):
            if epoch == 0:
                ctl.phase("feed-stage", feed["feedId"])
            rows = _split(df, workers).mapInArrow(make_feed_task(secret, feed, epoch), TRAIN_ACK_SCHEMA).collect()
            stats = [r.asDict() for r in rows]
            ctl.event({"type": "feed-epoch", "feedId": feed["feedId"], "epoch": epoch, "workers": stats})
            if any(s["terminated"] for s in stats):
                break
    else:
        # The DDL is parsed here, where a SparkContext exists; tasks get the Arrow schema.
        target = _ddl_to_arrow(feed["resultSchema"])
        ctl.phase("feed-stage", feed["feedId"])
        out = _split(df, workers).mapInArrow(make_feed_task(secret, feed, 0, target), feed["resultSchema"])
        _write_atomically(spark, out, feed["output"], bool(feed.get("overwrite")))


# "Task 1 in stage 3.0 failed 1 times, most recent failure: Lost task 1.0 in stage 3.0 (TID 6)
# (localhost executor driver): org.apache.hadoop.hdfs.BlockMissingException: Could not obtain…"
_STAGE_ABORT = re.compile(
    r"Task (\d+) in stage \S+ failed \d+ times?, most recent failure: Lost task \S+ in stage \S+ \(TID \d+\) \(([^)]*)\): (.*)"
)


def short_error(err, targets=None):
    """The message that matters from a Py4J/Spark error: our own, else the failed task's exception.

    A feeding stage that Spark aborted (a read failed: a DataNode gone, a file missing) is told as
    the worker whose task failed — a feed's partition i feeds worker i — and that task's own
    exception, without the scheduler's wrapping and the driver's stack.
    """
    text = str(err)
    for marker in ("RuntimeError: ", "ValueError: "):
        if marker in text:
            return text[text.index(marker) + len(marker) :].split("\n\tat ")[0].strip()[:4000]
    lines = [line.strip().lstrip(":").strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    lines = [line for line in lines if line and not line.startswith("An error occurred while calling")]
    for line in lines:
        m = _STAGE_ABORT.search(line)
        if m:
            worker = int(m.group(1))
            where = " (%s:%d)" % tuple(targets[worker]) if targets and worker < len(targets) else ""
            return ("the Spark task feeding worker %d%s on %s failed: %s" % (worker, where, m.group(2), m.group(3).strip()))[:4000]
    return (": ".join(lines[:2]) or type(err).__name__)[:4000]


def warm_feeding(data):
    """InputMode.SPARK: pays the feeding path's one-time costs (the SparkSession, the SQL planner,
    Arrow, the dataset's filesystem client and file listing) while the nodes start, instead of on
    the first cluster.train(). Plans what a feed runs without running it: it takes no task slot."""
    try:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
        df = spark.read.format(data.get("format") or "parquet").load(data["path"]) if data else spark.range(1)
        _split(df, 1).mapInArrow(lambda batches: batches, df.schema)._jdf.queryExecution().executedPlan()
    except Exception as err:  # the feed itself reports what is really wrong with the data
        log("feed warm-up skipped: %s" % short_error(err))


def _split(df, workers):
    """Exactly `workers` partitions, one per worker; coalesce avoids a shuffle when it can."""
    n = df.rdd.getNumPartitions()
    return df.coalesce(workers) if n >= workers else df.repartition(workers)


def _write_atomically(spark, df, output, overwrite=False):
    """Writes Parquet to a hidden sibling and renames it into place: no half-written output.

    With overwrite, the old output is renamed aside first and removed only once the new one is in
    place (put back if that fails). Hadoop renames a directory *into* an existing one, so the
    target is checked to be absent right before, and a copy nested in a target created meanwhile
    is moved back out.
    """
    import uuid

    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    Path = jvm.org.apache.hadoop.fs.Path
    target = Path(output)
    fs = target.getFileSystem(conf)
    existed = fs.exists(target)
    if existed and not overwrite:
        raise ValueError("output %s already exists (pass overwrite: true to replace it)" % output)
    tag = uuid.uuid4().hex[:8]
    tmp = Path(target.getParent(), "._tfos_tmp_%s_%s" % (target.getName(), tag))
    aside = Path(target.getParent(), "._tfos_old_%s_%s" % (target.getName(), tag))
    try:
        df.write.parquet(tmp.toString())
        if existed and not fs.rename(target, aside):
            raise RuntimeError("could not move the old output %s aside" % output)
        try:
            if fs.exists(target):
                raise RuntimeError("output %s appeared while the results were written; it was left alone" % output)
            if not fs.rename(tmp, target):
                raise RuntimeError("could not rename %s to %s" % (tmp.toString(), output))
            nested = Path(target, tmp.getName())
            if fs.exists(nested):
                fs.rename(nested, tmp)
                raise RuntimeError("output %s appeared while the results were moved in; it was left alone" % output)
        except BaseException:
            if existed and not fs.exists(target):
                fs.rename(aside, target)
            raise
        if existed:
            fs.delete(aside, True)
    finally:
        fs.delete(tmp, True)


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------


def available_slots(sc):
    """Tasks Spark can run at once right now (barrier mode needs all nodes at once)."""
    master = sc.master or ""
    if master.startswith("local"):
        return sc.defaultParallelism
    jsc = sc._jsc.sc()
    try:
        # What Spark's own barrier check uses: free task slots of the default resource profile.
        return int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
    except Exception:
        pass
    executors = jsc.getExecutorMemoryStatus().size() - 1  # minus the driver
    conf = sc.getConf()
    cores = int(conf.get("spark.executor.cores", "1"))
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    return max(0, executors) * (cores // task_cpus)


class DriverWatch:
    """Tells, from the failures of the launcher's command polls, when the driver is gone.

    A poll that times out after connecting reached a live driver process that did not answer in
    time (its event loop blocked): that is waited for the job's driverSilenceSec (default
    DRIVER_SILENT_SEC). Anything else (refused, reset, no route, a connect timeout, a server that
    cannot prove the secret) means the driver or its host is gone: DRIVER_LOST_SEC. Both count
    from the last answer.
    """

    def __init__(self, clock=time.time, silent_sec=DRIVER_SILENT_SEC):
        self.clock = clock
        self.silent_sec = silent_sec
        self.last_contact = clock()

    def heard(self):
        self.last_contact = self.clock()

    @staticmethod
    def silent(err):
        # urllib wraps connect failures (a connect timeout included) in URLError; a timeout while
        # waiting for the answer surfaces as the socket's own timeout.
        return isinstance(err, socket.timeout)

    def stop_reason(self, err):
        """Why to stop after this failed poll, or None to keep polling."""
        waited = self.clock() - self.last_contact
        if self.silent(err):
            if waited > self.silent_sec:
                return "driver connected but silent for %d s (%s): its process is stuck" % (waited, err)
            return None
        if waited > DRIVER_LOST_SEC:
            return "driver unreachable for %d s (%s)" % (waited, err)
        return None


def wait_for_slots(sc, needed, timeout_sec, ctl):
    deadline = time.time() + timeout_sec
    slots = available_slots(sc)
    # Local mode's slots are fixed at start: waiting cannot help.
    fixed = (sc.master or "").startswith("local")
    while slots < needed:
        if fixed or time.time() > deadline:
            raise ReservationError(
                "reservation failed: the cluster needs %d task slots at once, but Spark offered only %d within %d s "
                "(add executors or cores, or lower numExecutors)" % (needed, slots, 0 if fixed else timeout_sec)
            )
        time.sleep(0.5)
        slots = available_slots(sc)
    log("Spark offers %d task slots for %d nodes" % (slots, needed))


class ReservationError(Exception):
    pass


def read_token_from_conf(conf):
    token = conf.get("spark.tfos.bootstrap.token", None)
    if not token:
        raise SystemExit("tfos-launcher: no --token-file given and no spark.tfos.bootstrap.token in the Spark conf")
    return token


# Properties every route sets (lib/driver/routes/route.ts baseConf); a hand-typed spark-submit gets
# them here unless it sets them itself.
BASE_CONF = {
    "spark.dynamicAllocation.enabled": "false",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "3",
    "spark.task.maxFailures": "1",
    "spark.ui.showConsoleProgress": "false",
    "spark.locality.wait": "0s",
    "spark.executor.cores": "1",
}


def main():
    if "--control" not in sys.argv[1:2]:
        return self_driven(sys.argv[1:])
    parser = argparse.ArgumentParser(description="tfjs-on-spark launcher (Spark driver program)")
    parser.add_argument("--control", required=True, help="URL of the driver's control server")
    parser.add_argument("--token-file", help="file holding the one-time bootstrap token (else spark.tfos.bootstrap.token)")
    args = parser.parse_args()

    # Fail fast, before a SparkContext exists, when the token file is missing.
    token = read_token(args.token_file) if args.token_file else None

    from pyspark import SparkConf, SparkContext

    # spark-submit's JVM is already up: its conf (a Livy batch's token) is readable before a
    # SparkContext exists, so the driver hears from us while the context is still starting.
    SparkContext._ensure_initialized()
    conf = SparkConf()
    ctl = connect(args.control, token or read_token_from_conf(conf))
    sc = SparkContext(conf=conf)
    sc.setLogLevel("WARN")
    try:
        return run_cluster(sc, args.control, None, owns_context=True, ctl=ctl)
    finally:
        sc.stop()


# ---------------------------------------------------------------------------------------------
# Self-driven: `spark-submit ... tfos_launcher.py <module> [tfos run options] -- <args>` typed by
# hand. No Node process of the user's exists, so this Spark driver program starts the Node driver
# side itself (`tfos run` attached to this SparkContext) and serves it like any route's launcher.
# ---------------------------------------------------------------------------------------------


def package_dir():
    """The tfjs-on-spark package this launcher belongs to (TFOS_PACKAGE_DIR overrides)."""
    candidates = [os.environ.get("TFOS_PACKAGE_DIR", ""), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for d in candidates:
        if d and os.path.exists(os.path.join(d, "dist", "lib", "cli", "main.js")):
            return d
    raise SystemExit(
        "tfos-launcher: cannot find the tfjs-on-spark package (looked in %s); pass the launcher from the "
        "package's spark-jobs/ folder or set TFOS_PACKAGE_DIR (spark.driverEnv / spark.yarn.appMasterEnv)"
        % ", ".join(c for c in candidates if c)
    )


def node_binary():
    import shutil

    node = os.environ.get("TFOS_NODE") or shutil.which("node")
    if not node:
        raise SystemExit(
            "tfos-launcher: no Node.js on the Spark driver host (it runs the Node driver side): install Node >= 20 or set TFOS_NODE"
        )
    return node


def self_driven(argv):
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: spark-submit [spark options] tfos_launcher.py <module> [tfos run options] -- <args for your function>\n")
        return 2 if not argv else 0
    pkg = package_dir()
    node = node_binary()
    from pyspark import SparkConf, SparkContext

    conf = SparkConf()
    for k, v in BASE_CONF.items():
        conf.setIfMissing(k, v)
    sc = SparkContext(conf=conf)
    sc.setLogLevel("WARN")
    # The Node driver says where its control server listens on a pipe of its own.
    hs_read, hs_write = os.pipe()
    cmd = [node, os.path.join(pkg, "bin", "tfos.js"), "run", "--attach-fd", str(hs_write), "--attach-master", sc.master]
    # A project shipped with spark-submit --archives packed.tgz#alias: trainers start from there.
    archives = sc.getConf().get("spark.archives", "")
    if archives:
        cmd += ["--attach-archives", archives]
    cmd += list(argv)
    log("starting the Node driver: %s" % " ".join(cmd[:4] + ["..."]))

    try:
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, pass_fds=(hs_write,), preexec_fn=set_death_signal)
    except OSError as err:
        sc.stop()
        raise SystemExit("tfos-launcher: cannot start %s: %s" % (node, err))
    os.close(hs_write)
    with os.fdopen(hs_read) as hs:
        line = hs.readline()
    code = 1
    try:
        if line:
            hello = json.loads(line)
            code = run_cluster(sc, hello["controlUrl"], read_token(hello["tokenFile"]))
        # Tell the Node driver how the Spark side ended, then let it finish (results, errors, exit code).
        try:
            child.stdin.write(("exit %d\n" % code).encode("ascii"))
            child.stdin.close()
        except Exception:
            pass
        node_code = child.wait()
        return node_code if node_code != 0 else code
    finally:
        if child.poll() is None:
            child.kill()
        sc.stop()


def set_death_signal():
    """The child dies with this process, even when this one is SIGKILLed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def connect(control_url, token):
    """The control channel: the one-time token exchanged for the cluster secret, then 'launcher-started'."""
    ctl = Control(control_url, exchange_token(control_url, token))
    ctl.phase("launcher-started")
    return ctl


def run_cluster(sc, control_url, token, owns_context=False, ctl=None):
    """Runs one TF cluster on an existing SparkContext (a Livy session calls this directly)."""
    ctl = ctl or connect(control_url, token)
    schema = load_protocol(ctl)
    job = ctl.job()
    try:
        check_job(schema, job)
    except ProtocolError as err:
        ctl.event({"type": "failed", "error": "launcher: %s" % err})
        return 1
    n = job["clusterSize"]
    try:
        default_fs = sc._jsc.hadoopConfiguration().get("fs.defaultFS")
    except Exception:
        default_fs = None
    ctl.event({"type": "spark-started", "appId": sc.applicationId, "master": sc.master, "uiUrl": sc.uiWebUrl, "defaultFS": default_fs})
    if int(job.get("feedSlots") or 0) > 0:
        # While executors and trainers start (elsewhere, on a real cluster), this driver is idle.
        threading.Thread(target=warm_feeding, args=(job.get("feedData"),), name="tfos-warm-feed", daemon=True).start()
    group = "tfos-nodes-" + job["clusterId"]

    outcome = {}
    done = threading.Event()

    def node_stage():
        try:
            # InputMode.SPARK feeds run beside the nodes: one more slot per worker.
            wait_for_slots(sc, n + int(job.get("feedSlots", 0)), job["reservationTimeoutSec"], ctl)
            ctl.phase("executors-granted")
            sc.setJobGroup(group, "tfjs-on-spark: %d TF nodes" % n, interruptOnCancel=True)
            rdd = sc.parallelize(range(n), n).barrier().mapPartitions(make_node_task(ctl.url, ctl.secret, job))
            outcome["results"] = rdd.collect()
        except BaseException as err:  # noqa: B902 - report everything to the driver
            outcome["error"] = err
        finally:
            done.set()

    stage = threading.Thread(target=node_stage, name="tfos-node-stage")
    stage.daemon = True
    stage.start()

    driver = DriverWatch(silent_sec=int(job.get("driverSilenceSec") or DRIVER_SILENT_SEC))
    stop_reason = None
    protocol_error = None
    feeds = []
    while not done.is_set():
        try:
            cmd = ctl.command(2)
            driver.heard()
        except Exception as err:
            stop_reason = driver.stop_reason(err)
            if stop_reason:
                break
            time.sleep(1)
            continue
        if not cmd:
            continue
        try:
            check_command(schema, cmd)
        except ProtocolError as err:
            protocol_error = "launcher: %s" % err
            stop_reason = protocol_error
            break
        if cmd["type"] == "shutdown":
            stop_reason = cmd["reason"]
            break
        if cmd["type"] == "feed":
            # Feeds run beside the node stage; the poll loop must stay free for shutdown.
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.getOrCreate()
            t = threading.Thread(target=run_feed, args=(spark, ctl.secret, cmd["feed"], ctl), name="tfos-feed")
            t.daemon = True
            t.start()
            feeds.append(t)

    if stop_reason:
        log("stopping: %s" % stop_reason)
        sc.cancelJobGroup(group)
        done.wait(30)
        if protocol_error:
            ctl.event({"type": "failed", "error": protocol_error})
            return 1
        ctl.event({"type": "stopped"})
        return 0

    if "error" in outcome:
        err = outcome["error"]
        text = str(err)
        # Py4J wraps executor failures; keep the trainer's own message, not the JVM stack.
        marker = "RuntimeError: "
        if marker in text:
            text = text[text.index(marker) + len(marker) :].split("\n\tat ")[0]
        ctl.event({"type": "failed", "error": text.strip()[:20000]})
        return 1

    # A feed may still be committing its output (inference) after the trainers are done.
    for t in feeds:
        t.join(600)
    ctl.event({"type": "nodes-finished", "results": outcome.get("results", [])})
    return 0


def run_session(sc, control_url, token, own_session):
    """A Livy session's statement: runs the cluster. A session this run created (and closes next)
    also takes along its Scala REPL's class directory, which neither Livy nor Spark removes: a
    temporary directory per session, left in the driver's java.io.tmpdir."""
    try:
        return run_cluster(sc, control_url, token)
    finally:
        if own_session:
            remove_repl_class_dir(sc)


def remove_repl_class_dir(sc):
    try:
        path = sc.getConf().get("spark.repl.class.outputDir", None)
    except Exception:
        return
    # Livy names it spark<random digits> (Files.createTempDirectory); anything else is not its.
    if path and re.match(r"^spark\d+$", os.path.basename(path)) and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


# A Livy session defines TFOS_SESSION before executing this file's source, then calls run_session.
if __name__ == "__main__" and not globals().get("TFOS_SESSION"):
    sys.exit(main())
