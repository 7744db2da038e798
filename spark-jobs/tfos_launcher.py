"""tfjs-on-spark launcher: the Spark driver program that every route submits unchanged.

It is a thin agent of the Node driver (the process that called TFCluster.run):

1. Reads the per-cluster secret (a file, never a command-line value), connects back to the
   driver's control server over HTTP and fetches the job spec.
2. Starts a SparkContext and waits until Spark offers enough task slots for all nodes at once.
3. Runs the node stage in barrier mode: one task per TF node, all started together or none.
   Each task starts one Node trainer, relays its output to the executor log and to the driver,
   and ends with the trainer, raising the trainer's error text if it failed.
4. Meanwhile polls the driver for commands (shutdown, and later feeding / inference stages),
   and stops everything when the driver says so or can no longer be reached.

Only the Python standard library and pyspark are used, so any Spark cluster can run it.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# How long the driver may be unreachable before the launcher gives up and stops the cluster.
DRIVER_LOST_SEC = 20


class Control:
    """HTTP client of the driver's control server."""

    def __init__(self, url, secret):
        self.url = url.rstrip("/")
        self.secret = secret

    def _request(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.secret)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            return json.loads(raw) if raw else None

    def job(self):
        return self._request("GET", "/v1/launcher/job")

    def event(self, ev):
        try:
            self._request("POST", "/v1/launcher/event", ev)
        except Exception as err:  # the driver may be gone; the executor logs still tell
            log("could not send event %s to the driver: %s" % (ev.get("type"), err))

    def command(self, wait_sec):
        return self._request("GET", "/v1/launcher/command?wait=%d" % wait_sec, timeout=wait_sec + 15)


def log(msg):
    sys.stderr.write("[tfos-launcher] %s\n" % msg)
    sys.stderr.flush()


def read_secret(path):
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
    raise SystemExit("tfos-launcher: secret file %s not found" % path)


# ---------------------------------------------------------------------------------------------
# Executor side: the node task. Defined here and shipped by value with the closure.
# ---------------------------------------------------------------------------------------------


def make_node_task(control_url, secret, job):
    trainer_command = job["trainerCommand"]
    trainer_env = job["trainerEnv"]
    roles = job["roles"]
    gpus_per_node = job.get("gpusPerNode", 0)

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
                self.conn.putrequest("POST", "/v1/launcher/log?node=%d&attempt=%d" % (node, attempt))
                self.conn.putheader("Authorization", "Bearer " + secret)
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
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        index = ctx.partitionId()
        attempt = ctx.attemptNumber()
        role = roles[index]
        label = "%s:%d" % (role["job"], role["taskIndex"])
        env = dict(os.environ)
        env.update(trainer_env)
        # In standalone mode an executor's working directory is .../<app-id>/<executor-id>.
        executor_id = os.path.basename(os.getcwd()) if os.path.basename(os.path.dirname(os.getcwd())).startswith("app-") else "driver"
        env.update(
            {
                "TFOS_CONTROL_URL": control_url,
                "TFOS_NODE_INDEX": str(index),
                "TFOS_ATTEMPT": str(attempt),
                "TFOS_EXECUTOR_ID": executor_id,
                "TFOS_STAGE_ID": str(ctx.stageId()),
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
# Driver side
# ---------------------------------------------------------------------------------------------


def available_slots(sc):
    """Tasks Spark can run at once right now (barrier mode needs all nodes at once)."""
    master = sc.master or ""
    if master.startswith("local"):
        return sc.defaultParallelism
    jsc = sc._jsc.sc()
    executors = jsc.getExecutorMemoryStatus().size() - 1  # minus the driver
    conf = sc.getConf()
    cores = int(conf.get("spark.executor.cores", "1"))
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    return max(0, executors) * (cores // task_cpus)


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


def read_secret_from_conf(sc):
    secret = sc.getConf().get("spark.tfos.secret", None)
    if not secret:
        raise SystemExit("tfos-launcher: no --secret-file given and no spark.tfos.secret in the Spark conf")
    return secret


def main():
    parser = argparse.ArgumentParser(description="tfjs-on-spark launcher (Spark driver program)")
    parser.add_argument("--control", required=True, help="URL of the driver's control server")
    parser.add_argument("--secret-file", help="file holding the per-cluster secret (else spark.tfos.secret)")
    args = parser.parse_args()

    # Fail fast, before a SparkContext exists, when the secret file is missing.
    secret = read_secret(args.secret_file) if args.secret_file else None

    from pyspark import SparkConf, SparkContext

    sc = SparkContext(conf=SparkConf())
    sc.setLogLevel("WARN")
    try:
        return run_cluster(sc, args.control, secret or read_secret_from_conf(sc), owns_context=True)
    finally:
        sc.stop()


def run_cluster(sc, control_url, secret, owns_context=False):
    """Runs one TF cluster on an existing SparkContext (a Livy session calls this directly)."""
    ctl = Control(control_url, secret)
    job = ctl.job()
    n = job["clusterSize"]
    try:
        default_fs = sc._jsc.hadoopConfiguration().get("fs.defaultFS")
    except Exception:
        default_fs = None
    ctl.event({"type": "spark-started", "appId": sc.applicationId, "master": sc.master, "uiUrl": sc.uiWebUrl, "defaultFS": default_fs})
    group = "tfos-nodes-" + job["clusterId"]

    outcome = {}
    done = threading.Event()

    def node_stage():
        try:
            wait_for_slots(sc, n, job["reservationTimeoutSec"], ctl)
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

    last_contact = time.time()
    stop_reason = None
    while not done.is_set():
        try:
            cmd = ctl.command(2)
            last_contact = time.time()
        except Exception as err:
            if time.time() - last_contact > DRIVER_LOST_SEC:
                stop_reason = "driver unreachable for %d s (%s)" % (DRIVER_LOST_SEC, err)
                break
            time.sleep(1)
            continue
        if cmd and cmd.get("type") == "shutdown":
            stop_reason = cmd.get("reason", "shutdown requested")
            break

    if stop_reason:
        log("stopping: %s" % stop_reason)
        sc.cancelJobGroup(group)
        done.wait(30)
        ctl.event({"type": "stopped"})
        return 0

    if "error" in outcome:
        err = outcome["error"]
        text = str(err)
        # Py4J wraps executor failures; keep the trainer's own message, not the JVM stack.
        marker = "RuntimeError: "
        if marker in text:
            text = text[text.index(marker) + len(marker):].split("\n\tat ")[0]
        ctl.event({"type": "failed", "error": text.strip()[:20000]})
        return 1

    ctl.event({"type": "nodes-finished", "results": outcome.get("results", [])})
    return 0


# A Livy session defines TFOS_SESSION before executing this file's source, then calls run_cluster.
if __name__ == "__main__" and not globals().get("TFOS_SESSION"):
    sys.exit(main())
