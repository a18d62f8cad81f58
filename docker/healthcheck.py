"""Container healthcheck without curl: exit 0 when GET URL answers 200 within TIMEOUT seconds, else 1.

    python /app/docker/healthcheck.py [URL] [TIMEOUT]     (default http://127.0.0.1:8000/readyz, 4 s)

Proxies from the environment are ignored: the check is always about this container's own port.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/readyz"


def check(url: str = DEFAULT_URL, timeout: float = 4.0) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(check(args[0] if args else DEFAULT_URL, float(args[1]) if len(args) > 1 else 4.0))
