#!/usr/bin/env python3
"""CPU time used by each tier of a running stack, from /proc: `tier-cpu.py snapshot FILE tier=pid,pid ...`
writes the CPU seconds (user + system) of each tier's processes and their children to FILE;
`tier-cpu.py per-hop BEFORE AFTER HOPS` prints each tier's CPU per hop and per second of the run,
and what one core of each tier would carry at that cost (the tier that saturates first has the
smallest figure)."""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def tree(pid):
    seen, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += children(p)
    return seen


def snapshot(path, specs):
    result = {}
    for spec in specs:
        tier, pids = spec.split("=", 1)
        total = 0.0
        for pid in filter(None, pids.split(",")):
            total += sum(cpu_seconds(p) for p in tree(int(pid)))
        result[tier] = total
    with open(path, "w") as f:
        json.dump(result, f)


def per_hop(before_path, after_path, hops, seconds):
    before, after = json.load(open(before_path)), json.load(open(after_path))
    print("  %-10s %14s %16s %22s" % ("tier", "CPU ms per hop", "cores busy", "hops/s per core at this cost"))
    for tier in after:
        used = max(0.0, after[tier] - before.get(tier, 0.0))
        per = used / hops * 1000 if hops else 0.0
        print("  %-10s %14.3f %16.2f %22s" % (tier, per, used / seconds, "%.0f" % (1000 / per) if per > 0 else "-"))


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        snapshot(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "per-hop":
        per_hop(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(__doc__)
