"""Labelhive benchmarks: `python -m bench [names...]` (`make bench`).

Each benchmark is a module `bench/<name>.py` with an `async def main() -> None`, registered by name in
`bench/__main__.py`. Shared pieces (a throw-away database and Redis namespace, a running platform, the
load generator, summaries and tables) live in `bench/common.py`.
"""
