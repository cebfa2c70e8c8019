#!/usr/bin/env python3
"""What `make scale-test`'s Prometheus saw (issue 32).

  scale-monitor.py watch PROMETHEUS_URL OUT.jsonl
      polls /api/v1/alerts every second until killed; each firing alert, the first time it is
      seen firing, as one JSON line (name, severity, labels, summary, active_at, seen_at)
  scale-monitor.py report OUT.jsonl FAULTS
      prints which alerts fired during the run and why, each next to the fault before it (FAULTS:
      lines "<unix time> <fault>" as the scale test wrote them); exit 1 unless each fault fired
      its own alert after it: replica -> GatewayReplicaDown, redis -> RedisUnreachable,
      postgres -> PostgresUnreachable
  scale-monitor.py picture PROMETHEUS_URL START END OUT.png
      draws the dashboard's main panels (deploy/monitoring/dashboard.json) from the run's series,
      with the faults and alerts marked: the README's picture (matplotlib from PyPI)
"""
import json
import os
import sys
import time
import urllib.parse
import urllib.request

EXPECTED = {"replica": "GatewayReplicaDown", "redis": "RedisUnreachable", "postgres": "PostgresUnreachable"}


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def watch(base, out):
    seen = set()
    while True:
        try:
            alerts = get(base + "/api/v1/alerts")["data"]["alerts"]
        except Exception:
            time.sleep(1)
            continue
        with open(out, "a") as file:
            for alert in alerts:
                if alert["state"] != "firing":
                    continue
                labels = alert["labels"]
                key = (labels["alertname"], json.dumps(labels, sort_keys=True), alert.get("activeAt"))
                if key in seen:
                    continue
                seen.add(key)
                file.write(json.dumps({
                    "name": labels["alertname"], "severity": labels.get("severity", ""), "labels": labels,
                    "summary": alert.get("annotations", {}).get("summary", ""), "active_at": alert.get("activeAt"), "seen_at": time.time(),
                }) + "\n")
        time.sleep(1)


def faults_of(path):
    faults = []
    for line in open(path):
        at, name = line.split(None, 1)
        faults.append((float(at), name.strip()))
    return faults


def report(out, faults_path):
    fired = [json.loads(line) for line in open(out) if line.strip()] if out else []
    faults = faults_of(faults_path)
    start = faults[0][0] if faults else 0
    print("alerts that fired (times from the first fault; 'for:' shortened to 2 s):")
    for alert in sorted(fired, key=lambda a: a["seen_at"]):
        before = [name for at, name in faults if at <= alert["seen_at"]]
        where = {k: v for k, v in alert["labels"].items() if k not in ("alertname", "severity", "job")}
        print("  %+7.1f s  %-34s %-8s after %-9s %s  %s" % (
            alert["seen_at"] - start, alert["name"], alert["severity"], before[-1] if before else "-", alert["summary"],
            ", ".join("%s=%s" % kv for kv in sorted(where.items()))))
    failed = False
    for index, (at, fault) in enumerate(faults):
        until = faults[index + 1][0] if index + 1 < len(faults) else float("inf")
        expected = EXPECTED.get(fault)
        if not expected:
            continue
        if fault == "redis" and os.environ.get("REDIS_MODE") == "cluster":
            # A primary killed in a cluster is a failover its replica covers within a second:
            # Redis stays reachable, and no alert is due.
            print("%-9s fault at %+6.1f s -> (a cluster failover: no alert expected)" % (fault, at - start))
            continue
        hits = [a for a in fired if a["name"] == expected and at <= a["seen_at"] < until + 30]
        ok = bool(hits)
        failed |= not ok
        print("%-9s fault at %+6.1f s -> %-20s %s" % (fault, at - start, expected, "fired after %.1f s" % (min(a["seen_at"] for a in hits) - at) if ok else "DID NOT FIRE"))
    sys.exit(1 if failed else 0)


def query_range(base, expr, start, end, step):
    url = base + "/api/v1/query_range?" + urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    return get(url)["data"]["result"]


def picture(base, start, end, png, faults_path=None, alerts_path=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dashboard = json.load(open("deploy/monitoring/dashboard.json"))
    panels = {p["title"]: p for p in dashboard["panels"] if p.get("type") != "row"}
    # The main panels, their queries as the dashboard has them, over 1-minute windows shortened to
    # the run's scale (rates over 15 s, quantiles over 15 s).
    chosen = ["USSD hops per second", "USSD hop latency", "Money journeys per minute", "Errors by kind", "Dependencies up", "CPU per replica"]
    start, end = float(start), float(end)
    step = max(1, int((end - start) / 300))
    figure, axes = plt.subplots(3, 2, figsize=(13, 10), sharex=True)
    faults = faults_of(faults_path) if faults_path else []
    fired = [json.loads(line) for line in open(alerts_path) if line.strip()] if alerts_path else []
    for axis, title in zip(axes.flat, chosen):
        panel = panels[title]
        for target in panel["targets"]:
            expr = target["expr"].replace("[5m]", "[15s]").replace("[1m]", "[15s]")
            for series in query_range(base, expr, start, end, step):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = target.get("legendFormat", "")
                for key, value in series["metric"].items():
                    label = label.replace("{{%s}}" % key, value).replace("{{ %s }}" % key, value)
                axis.plot(xs, ys, label=(label or ",".join("%s=%s" % kv for kv in series["metric"].items()))[:40], linewidth=1)
        for at, name in faults:
            axis.axvline(at - start, color="red", linestyle=":", linewidth=1)
        axis.set_title(title, fontsize=10)
        axis.tick_params(labelsize=8)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="upper left")
    for at, name in faults:
        axes.flat[0].annotate(name, (at - start, 0), fontsize=7, color="red", rotation=90, va="bottom")
    names = sorted({a["name"] for a in fired})
    figure.suptitle("make scale-test: three replicas behind haproxy under simulated handsets (x: seconds; red: faults)\nalerts fired: " + (", ".join(names) or "none"), fontsize=10)
    figure.tight_layout()
    figure.savefig(png, dpi=80)
    print("scale-monitor: drew %s" % png)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "watch":
        watch(sys.argv[2], sys.argv[3])
    elif command == "report":
        report(sys.argv[2], sys.argv[3])
    elif command == "picture":
        picture(*sys.argv[2:6], *(sys.argv[6:8]))
    else:
        sys.exit(__doc__)
