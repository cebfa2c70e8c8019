#!/usr/bin/env python3
"""Gateway binaries (or settings) against each other, interleaved, on one throwaway stack.

  python3 scripts/interleaved.py --variant before=/tmp/gw-a --variant after=/tmp/gw-b[,KEY=VALUE...] \
          [--journey menu|send] [--rounds 4] [--duration 10] [--node PID,PID]

Starts one Redis and one Postgres (fsync on), migrates with the first variant's binary, registers
and funds 500 numbers as ../shared/bench/side-by-side.py does, then runs each round: every variant
in turn (a gateway started for it, 2 s of warm-up, `--duration` s of wrk on the journey, stopped),
then the Node peer on 127.0.0.1:9201 when `--node` gives its pids. Prints each run and the
medians. The variants share the database, so drift (a growing ledger) falls on all of them alike.
List the binary with the newest migrations first.
"""
import argparse, importlib.util, os, statistics, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "bench"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("sbs", BENCH / "side-by-side.py")
sbs = importlib.util.module_from_spec(spec); spec.loader.exec_module(sbs)
services = sbs.services
ap = argparse.ArgumentParser()
ap.add_argument("--variant", action="append", required=True)
ap.add_argument("--journey", default="send")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--node", default="")  # pids of node peer on 9201
ap.add_argument("--pool", type=int, default=500)
ap.add_argument("--psql", action="append", default=[])
a = ap.parse_args()
variants = []
for v in a.variant:
    name, rest = v.split("=", 1)
    parts = rest.split(",")
    variants.append((name, parts[0], dict(p.split("=", 1) for p in parts[1:])))
work = Path(tempfile.mkdtemp(prefix="alt-", dir="/tmp")); os.chmod(work, 0o755)
redis = services.Redis(work); pg = services.Postgres(work, "ussd")
checkout = ROOT
try:
    redis.start(); services.wait_until(redis.ping, 10); sbs.start_postgres_durable(pg)
    for s in a.psql: pg.psql(s, database="postgres")
    def make(binary, extra):
        port = services.free_port()
        env = dict(os.environ, ENVIRONMENT="development", HTTP_PORT=str(port), REDIS_URL=redis.url, DATABASE_URL=pg.url,
                   USSD_RATE_LIMIT_PER_MINUTE="0", RESUME_WINDOW_SECONDS="0", LOG_LEVEL="warning", MENUS_PATH=str(checkout / "menus.json"), **extra)
        return services.Gateway(binary, checkout, env, work)
    g = make(variants[0][1], variants[0][2]); g.migrate(); g.start()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: sbs.register(g.base_url + "/ussd/africastalking", i), range(a.pool)))
    pg.psql("""INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
               SELECT 'sbs-fund-' || a.id, f.id, a.id, 100000000, 'deposit', 'posted'
               FROM accounts a, accounts f WHERE a.kind = 'main' AND a.customer_id IS NOT NULL AND f.customer_id IS NULL AND f.kind = 'mpesa_float'""")
    pg.psql("ANALYZE"); g.stop()
    res = {n: [] for n, _, _ in variants}; node = []
    for r in range(a.rounds):
        for name, binary, extra in variants:
            g = make(binary, extra); g.start(); pids = sbs.tree(g.proc.pid)
            sbs.wrk(g.base_url + "/ussd/africastalking", a.journey, 2, 32, a.pool, pids)
            x = sbs.wrk(g.base_url + "/ussd/africastalking", a.journey, a.duration, 32, a.pool, pids)
            g.stop(); res[name].append(x)
            print(f"round {r+1} {name:12s} {x['rps']:9.1f}/s p50 {x['p50']:6.2f} p99 {x['p99']:6.2f} CPU {x['cpu_ms_per_req']:.3f}", flush=True)
        if a.node:
            x = sbs.wrk("http://127.0.0.1:9201/ussd", "peer", a.duration, 32, a.pool, {int(p) for p in a.node.split(",")})
            node.append(x); print(f"round {r+1} {'node':12s} {x['rps']:9.1f}/s p50 {x['p50']:6.2f} p99 {x['p99']:6.2f} CPU {x['cpu_ms_per_req']:.3f}", flush=True)
    print("medians:")
    for name, xs in list(res.items()) + ([("node", node)] if node else []):
        print(f"  {name:12s} {statistics.median(x['rps'] for x in xs):9.1f}/s p99 {statistics.median(x['p99'] for x in xs):6.2f} CPU {statistics.median(x['cpu_ms_per_req'] for x in xs):.3f}  p99s {[round(x['p99'],1) for x in xs]}")
    print("ledger sum", pg.psql("SELECT sum(balance)::bigint FROM account_balances").strip(), "p2p", pg.psql("SELECT count(*) FROM transfers WHERE kind='p2p'").strip())
finally:
    pg.stop(); redis.stop()
