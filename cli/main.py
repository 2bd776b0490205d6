"""Entry point of the `custody` command.

The hottest command, ``custody secret get CLIENT TITLE`` while the vault agent runs, is
answered here with the standard library only: no click, no SQLAlchemy, no KDF. That keeps a
read within a small multiple of ``pass show``. Anything else - or anything unusual about the
call - goes to the full click command tree in ``cli.app``.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    # Files we create (database, WAL, identity files, exports) are for this user alone.
    os.umask(0o077)
    args = sys.argv[1:] if argv is None else argv
    fast = _fast_secret_get(args)
    if fast is not None:
        return fast
    from cli.app import run

    return run(args)


_FAST_OPTIONS = {"--field": "field", "--reason": "reason", "--version": "version"}
_FIELDS = ("value", "username", "notes")


def _fast_secret_get(args: list[str]) -> int | None:
    """Serve `secret get CLIENT TITLE [--field F] [--reason R] [--version N]` through a running
    agent; return None to fall back to the full CLI (which also gives all error messages)."""
    if len(args) < 4 or args[0] != "secret" or args[1] != "get":
        return None
    if os.environ.get("CUSTODY_NO_AGENT") == "1" or os.environ.get("CUSTODY_SERVER"):
        return None
    positional: list[str] = []
    options: dict[str, str] = {}
    rest = iter(args[2:])
    for arg in rest:
        if arg in _FAST_OPTIONS:
            value = next(rest, None)
            if value is None:
                return None
            options[_FAST_OPTIONS[arg]] = value
        elif arg.startswith("-"):
            return None  # --json, --help, --field=x ...: the full CLI handles it
        else:
            positional.append(arg)
    field = options.get("field", "value")
    version = options.get("version")
    if (
        len(positional) != 2
        or field not in _FIELDS
        or (version is not None and not version.isdigit())
    ):
        return None
    from vault.agent import AgentUnavailable, call, socket_path

    path = socket_path()
    if not os.path.exists(path):
        return None
    try:
        result = call(
            path,
            "secret.read",
            {
                "client": positional[0],
                "title": positional[1],
                "version": int(version) if version is not None else None,
                "reason": options.get("reason"),
            },
        )
    except AgentUnavailable:
        return None
    except Exception as exc:  # noqa: BLE001 - CustodyError raised from the agent's reply
        message = getattr(exc, "message", None)
        if message is None:
            raise
        sys.stderr.write(f"custody: error: {message}\n")
        return 2
    sys.stdout.write((result.get(field) or "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
