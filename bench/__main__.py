"""`python -m bench [names...]`: runs every registered benchmark, or only the named ones.

A benchmark is a module with `async def main() -> None`; register it below. Modules are imported
only when run, and one that does not exist yet is skipped with a note, so the list can name
benchmarks before they are written.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable

# name -> module providing `async def main()`, in the order `python -m bench` runs them.
BENCHMARKS: dict[str, str] = {
    "gateway": "bench.gateway",
    "replicas": "bench.replicas",
    "dataset": "bench.dataset",
    "tasks": "bench.tasks",
    "face": "bench.face",
    "detect": "bench.detect",
    "console": "bench.console",
}

BenchMain = Callable[[], Awaitable[None]]


def load(name: str) -> BenchMain | None:
    """The benchmark's `main`, or None when its module does not exist yet."""
    module_name = BENCHMARKS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise  # the module exists but something it imports does not: that is an error
    return module.main


async def run(names: list[str]) -> int:
    # SIGTERM ends a run like Ctrl-C does: the benchmark is cancelled and cleans up after itself.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    failed = []
    for name in names:
        try:
            main = load(name)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        if main is None:
            print(f"[bench] {name}: skipped, {BENCHMARKS[name].replace('.', '/')}.py does not exist yet", flush=True)
            continue
        print(f"\n=== {name} ===", flush=True)
        try:
            await main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="name", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            try:
                state = "" if load(name) else "  (not written yet)"
            except Exception as exc:
                state = f"  (import fails: {exc!r})"
            print(f"{name}: {module}{state}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run(names))
    except KeyboardInterrupt:
        print("\n[bench] interrupted", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("\n[bench] terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
