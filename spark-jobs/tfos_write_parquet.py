#!/usr/bin/env python3
"""Arrow IPC -> Parquet converter for `tfos data` (lib/io/dataset-parquet.ts drives it).

Protocol on stdin/stdout, one request at a time, so one Python process serves a whole ingest:
  request:  a JSON line {"name": str, "bytes": N}, then N bytes of an Arrow IPC *file*
  response: a JSON line {"ok": true, "bytes": M, "rows": R}, then M bytes of Parquet,
            or {"ok": false, "error": "..."} (no payload)
EOF on stdin ends the process. Options: --compression NAME (default none).

Parquet layout: one row group per partition; dictionary encoding only for `label`; statistics for
the small columns only (min/max of 3 KB image blobs are useless). Spark reads the result with
spark.read.parquet (id -> LongType, label -> IntegerType, image -> BinaryType).
"""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def read_exact(stream, n):
    chunks = []
    left = n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"stdin ended {left} bytes before the end of a {n}-byte request")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def convert(data, compression):
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    small = [f.name for f in table.schema if not (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type))]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=compression,
        use_dictionary=[c for c in small if c == "label"],
        write_statistics=small,
        row_group_size=max(table.num_rows, 1),
        data_page_size=1 << 20,
    )
    return sink.getvalue(), table.num_rows


def main(argv):
    compression = "none"
    if "--compression" in argv:
        compression = argv[argv.index("--compression") + 1]
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    while True:
        line = inp.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        req = json.loads(line)
        data = read_exact(inp, int(req["bytes"]))
        try:
            buf, rows = convert(data, compression)
        except Exception as exc:  # reported to the Node side, which names the partition
            out.write((json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
            out.flush()
            continue
        out.write((json.dumps({"ok": True, "bytes": buf.size, "rows": rows}) + "\n").encode())
        out.write(memoryview(buf))
        out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
