"""What a long-running Custody process (the API server, the local agent) does to itself at start."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Keep the garbage collector's full collections off everything made at start-up.

    What a server process has made by then - the app, its routes and schemas, SQLAlchemy's
    tables and mappers, the libraries - lives as long as the process. Each full collection
    would walk all of it again: about 60 ms on our 2-core machines, during which no request
    moves, and the main part of the slowest 1% of check-outs (docs/benchmarks.md, section 3).
    Frozen objects are never scanned; collecting first leaves no garbage among them.

    Call it once, in the process that serves, when it is ready to: never in a library call or
    a test process, which would freeze whatever it holds at that moment, for good.
    """
    gc.collect()
    gc.freeze()
