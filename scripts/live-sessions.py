#!/usr/bin/env python3
"""Opens N USSD sessions that stay live: each gets its first hop (the dial) and nothing more, so
it sits on its first screen until its TTL. Used by `make open-loop` (LIVE_SESSIONS) to measure the
gateway's memory with that many live sessions under load.

usage: live-sessions.py URL N
"""
import http.client
import sys
import time
import urllib.parse

url, count = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
stamp, opened, started = int(time.time()), 0, time.monotonic()
for index in range(count):
    body = urllib.parse.urlencode({
        "sessionId": f"live-{stamp}-{index}", "serviceCode": "*384*96#",
        "phoneNumber": f"+2547{30000000 + index:08d}", "networkCode": "63902", "text": "",
    })
    connection.request("POST", url.path, body, {"Content-Type": "application/x-www-form-urlencoded"})
    reply = connection.getresponse().read().decode()
    opened += reply.startswith("CON ")
print(f"== live sessions: {opened} of {count} dials answered CON in {time.monotonic() - started:.1f} s")
sys.exit(0 if opened == count else 1)
