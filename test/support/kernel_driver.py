"""Drives one Jupyter kernel for a test (test/support/kernel.ts), through jupyter_client from the
Python environment that `tfos setup --notebook` provisioned.

stdin: JSON lines {"op": "execute", "tag": T, "code": C} | {"op": "interrupt"} | {"op": "shutdown"}.
stdout: JSON lines: {"type": "ready"}, {"type": "sent", "tag": T, "id": MSG_ID}, and every message of
the kernel's iopub and shell channels as {"type": "iopub"|"shell", "msg_type", "parent", "content"}.
The kernel is shut down when stdin closes or says shutdown.
"""

import json
import os
import select
import sys

from jupyter_client.manager import KernelManager


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    kernel_name, cwd = sys.argv[1], sys.argv[2]
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=cwd)
    kc = km.client()
    kc.start_channels()
    pending = b""
    try:
        kc.wait_for_ready(timeout=300)
        emit(type="ready")
        while True:
            # Raw reads: a buffered readline would hide a second line from select().
            if select.select([sys.stdin], [], [], 0.05)[0]:
                chunk = os.read(sys.stdin.fileno(), 1 << 20)
                if not chunk:
                    return
                pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                cmd = json.loads(line)
                if cmd["op"] == "execute":
                    emit(type="sent", tag=cmd["tag"], id=kc.execute(cmd["code"]))
                elif cmd["op"] == "interrupt":
                    km.interrupt_kernel()  # the kernel spec's interrupt_mode: SIGINT to the kernel
                elif cmd["op"] == "shutdown":
                    return
            for kind, channel in (("iopub", kc.iopub_channel), ("shell", kc.shell_channel)):
                while channel.msg_ready():
                    msg = channel.get_msg(timeout=0)
                    emit(type=kind, msg_type=msg["msg_type"], parent=msg["parent_header"].get("msg_id"), content=msg["content"])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


if __name__ == "__main__":
    main()
