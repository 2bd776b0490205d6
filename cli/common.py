"""Helpers shared by the CLI commands: opening the store, unsealing, printing."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import date, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from vault.keys import KeyRing
    from vault.services import Context
    from vault.store import Store

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class Finding(Exception):  # noqa: N818 - what it is, not an error of the user's
    """The command checked something and found it wrong (a log that does not verify): not a
    usage error. :func:`cli.app.run` prints it as one ``custody: FAILED:`` line, exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def operator_actor() -> str:
    """Who is acting on a local store: the operating-system user at this machine."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"operator:{user}"


def server_url() -> str | None:
    """The server given with `custody --server URL` (or CUSTODY_SERVER), if any."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    value = root.params.get("server") if root is not None else None
    return value or os.environ.get("CUSTODY_SERVER") or None


def remote() -> Any:
    """A client for the chosen server, or None to work on the local store."""
    url = server_url()
    if url is None:
        return None
    from cli.remote import Remote

    return Remote(url)


def local_only(what: str) -> None:
    if server_url() is not None:
        from vault.errors import InvalidInput

        raise InvalidInput(f"{what} works on the local store only (drop --server)")


def settings() -> Any:
    from vault.config import Settings

    return Settings.from_env()


def open_store() -> Store:
    from vault.store import Store

    return Store.open(settings())


def prompt_hidden(label: str, *, instead: str | None = None) -> str:
    """Ask for a hidden value on the terminal. With no terminal, fail with one line that names
    ``instead``: how to give the value without one (an option, a variable)."""
    if not sys.stdin.isatty():
        from vault.errors import InvalidInput

        hint = f" ({instead})" if instead else ""
        raise InvalidInput(f"{label.lower()} needed: no terminal to ask on{hint}")
    return click.prompt(label, hide_input=True, err=True)


def _unseal_prompt(label: str) -> str:
    """The unseal passphrase or a share, from the terminal; without one, an UnsealError."""
    from vault.errors import InvalidInput, UnsealError

    try:
        return prompt_hidden(label, instead="set CUSTODY_UNSEAL_FILE")
    except InvalidInput as exc:
        raise UnsealError(exc.message) from None


def agent_socket() -> str | None:
    """The socket a vault agent (`custody start`) of this data directory would listen on, if
    it exists; None otherwise, or with CUSTODY_NO_AGENT=1. Whether an agent answers there is
    for the first request to find out (reads fall back to the store when none does)."""
    from vault.agent import socket_path

    if os.environ.get("CUSTODY_NO_AGENT") == "1":
        return None
    path = socket_path()
    return path if os.path.exists(path) else None


def running_agent() -> str | None:
    """The socket of the vault agent serving this data directory, when one answers a ping;
    None otherwise. Commands that need the keys ask it to do the work rather than ask for
    the passphrase a second time. Writes ask only after the ping: a request the agent may
    have carried out before failing must not be done again here."""
    from vault.agent import AgentUnavailable, call

    path = agent_socket()
    if path is None:
        return None
    try:
        call(path, "ping")
    except AgentUnavailable:
        return None
    return path


def keyed_operation(
    store: Store | None, operation: str, args: dict[str, Any], *, timeout: float | None = None
) -> Any:
    """An operation that needs the vault's keys (one of ``vault.agent_server.OPERATIONS``,
    ``READ_OPERATIONS`` or ``STORE_OPERATIONS``): done by the running agent when one answers
    (waiting up to ``timeout`` seconds, the agent client's default if None), else here, after
    unsealing, on ``store`` - or, when None, on the local store opened for it only then.
    Either way the same function checks the arguments and shapes the result, in the same
    kind of transaction (read-only for READ_OPERATIONS)."""
    agent = running_agent()
    if agent is not None:
        from vault.agent import TIMEOUT_SECONDS, call

        return call(agent, operation, args, timeout=timeout or TIMEOUT_SECONDS)
    from vault.agent_server import run_operation

    with nullcontext(store) if store is not None else opened_store() as here:
        return run_operation(here, unseal(here), operator_actor(), operation, args)


def keyed_operation_here(
    operation: str, args: dict[str, Any], *, timeout: float | None = None
) -> Any:
    """:func:`keyed_operation` on the local store, opened only if no agent answers (for the
    commands that take no store of their own)."""
    return keyed_operation(None, operation, args, timeout=timeout)


@contextmanager
def opened_store() -> Iterator[Store]:
    """The local store, for the block; its connections closed after."""
    store = open_store()
    try:
        yield store
    finally:
        store.engine.dispose()


def unseal(store: Store) -> KeyRing:
    from vault.store import unseal_secret_from

    meta = store.meta()
    secret = unseal_secret_from(meta, store.settings, env=dict(os.environ), prompt=_unseal_prompt)
    return store.unseal(secret)


@contextmanager
def local_context(*, unsealed: bool = False, reading: bool = False) -> Iterator[Context]:
    """One transaction on the local store as the operator (unsealing first if asked);
    ``reading``: a read-only one, which holds no write lock however long it takes (a server on
    the same SQLite file keeps writing meanwhile) - Store.read_context."""
    with opened_store() as store:
        keys = unseal(store) if unsealed else None
        opened = store.read_context if reading else store.context
        with opened(operator_actor(), keys) as ctx:
            yield ctx


def read_secret_file(path: str, variable: str) -> str:
    """A passphrase from a file named by an environment variable; one clear error if unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except OSError as exc:
        from vault.errors import InvalidInput

        raise InvalidInput(
            f"cannot read {variable} ({path}): {exc.strerror}", field=variable
        ) from None


def read_value_from_stdin() -> str:
    data = sys.stdin.read()
    # One trailing newline is the terminator of `echo`/`printf '%s\n'`, not part of the value.
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    return data


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold", show_lines=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    pairs = [(k, v) for k, v in pairs if v not in (None, "", [])]
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        click.echo(f"{key.ljust(width)}  {value}")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr when it is a terminal (a no-op otherwise), fed (done, total);
    a total of None means not known yet."""
    if not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def iso(value: Any) -> str | None:
    if value is None or isinstance(value, str):  # a server already sends ISO text
        return value
    return str(value.isoformat())


def remote_capable(func: F) -> F:
    """Marks a command that also works against a server: it then gets ``store=None``."""
    func.remote_capable = True  # type: ignore[attr-defined]
    return func


def with_store(func: Callable[Concatenate[Store, P], R]) -> Callable[P, R]:
    """Opens the store for the command (its first argument) and closes it afterwards.

    Against a server (--server), a command marked :func:`remote_capable` runs with
    ``store=None``; any other command refuses with one clear line."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if server_url() is not None:
            if not getattr(func, "remote_capable", False):
                from vault.errors import InvalidInput

                name = click.get_current_context().command_path
                raise InvalidInput(f"`{name}` works on the local store only (drop --server)")
            return func(None, *args, **kwargs)  # type: ignore[arg-type]
        with opened_store() as store:
            return func(store, *args, **kwargs)

    return wrapper
