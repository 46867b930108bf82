#!/usr/bin/env python3
"""Time from starting a worker process to its Ready message, for one or more worker programs.

    python3 scripts/worker-start.py [--runs N] WORKER [WORKER...]

Each WORKER is a path to `isola-worker` (or `isola` with `__worker` after a comma:
`target/release/isola,__worker`). Prints p50/p90 per program and the layers its Ready reports.
"""
import json, statistics, struct, subprocess, sys, time

def start(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env={})
    n = struct.unpack("<I", p.stdout.read(4))[0]
    ready = json.loads(p.stdout.read(n))
    dt = time.perf_counter() - t
    p.kill()
    p.wait()
    return dt, ready

args = sys.argv[1:]
runs = 200
if args[:1] == ["--runs"]:
    runs, args = int(args[1]), args[2:]
for prog in args:
    cmd = prog.split(",")
    start(cmd)  # warm the page cache
    times = sorted(start(cmd)[0] for _ in range(runs))
    layers = [l["name"] + ("" if l["active"] else "(off)") for l in start(cmd)[1]["hardening"]]
    print(f"{prog}: p50 {statistics.median(times) * 1e3:.2f} ms, "
          f"p90 {times[int(runs * 0.9)] * 1e3:.2f} ms over {runs} starts; {', '.join(layers)}")
