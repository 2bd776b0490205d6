"""Hot statements run straight on the DBAPI connection (check-out, check-in, token checks).

Executing a Core statement through SQLAlchemy costs some 25 microseconds of Python each time
(execution context, events, parameter and result set-up) against 2-3 for the driver itself:
for the handful of statements of a check-out or check-in, more CPU than the database. A
:class:`DirectStatement` lets SQLAlchemy compile the statement once per engine and keeps what
the execution context would work out on every run:

* the SQL text and its bind parameters in order, each with its type's bind processor
  (``UTCDateTime`` to naive UTC text on SQLite, ``Boolean`` to 0/1, ...);
* Python-side column defaults the statement leaves to SQLAlchemy (``onupdate=utcnow``);
* the result columns, each with its type's result processor (text back to an aware datetime).

Running it is one ``cursor.execute`` plus those conversions, so a row written this way is
stored exactly as SQLAlchemy would store it and reads back identically through the ORM, and a
row read this way carries the same Python values. The statement runs in whatever transaction
the :class:`~sqlalchemy.engine.Connection` is in. A DBAPI error goes through SQLAlchemy's own
handler: it is raised as the usual ``sqlalchemy.exc`` class, and a lost connection invalidates
the pool as it would for any other statement.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_NO_PARAMS: Mapping[str, Any] = {}
_Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Bind:
    """One bind parameter: where its value comes from, and how it is converted."""

    #: the name the driver knows it by (unused by positional drivers)
    name: str
    #: the key in the caller's parameters
    key: str
    #: whether the caller must give it (else ``value``, fixed in the statement, is the default:
    #: ``.values(needs_rotation=True)``)
    required: bool
    value: Any
    #: a Python-side default (a column's ``default`` or ``onupdate``), called on each run
    default: Callable[[], Any] | None
    processor: _Processor | None


class _Compiled:
    """A statement as one engine's dialect runs it."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding (IN) and literal-execute parameters are not supported")
        self.sql = compiled.string
        self.positional = compiled.positional
        processors = compiled._bind_processors
        escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
        defaults = _defaults(compiled)
        by_name = {name: param for param, name in compiled.bind_names.items()}
        binds = []
        for name in (compiled.positiontup or ()) if compiled.positional else by_name:
            param = by_name[name]
            binds.append(
                _Bind(
                    name=escaped.get(name, name),
                    key=param.key,
                    required=param.required,
                    value=param.value,
                    default=defaults.get(name),
                    processor=cast(_Processor | None, processors.get(name)),
                )
            )
        self.binds = tuple(binds)
        self.columns = tuple(column[0] for column in compiled._result_columns)
        self._result_types = tuple(column[3] for column in compiled._result_columns)
        self.row = namedtuple("Row", self.columns) if self.columns else None
        self._dialect = dialect
        #: (position, processor) of the result columns that need converting; found on the
        #: first run (SQLAlchemy picks a processor by the driver's type code too)
        self.converters: tuple[tuple[int, _Processor], ...] | None = None

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = []
        for bind in self.binds:
            if bind.default is not None:
                value = bind.default()
            elif bind.required:
                value = params[bind.key]
            else:
                value = params.get(bind.key, bind.value)
            if bind.processor is not None:
                value = bind.processor(value)
            values.append(value)
        if self.positional:
            return tuple(values)
        return {bind.name: value for bind, value in zip(self.binds, values, strict=True)}

    def find_converters(self, description: Sequence[Any]) -> tuple[tuple[int, _Processor], ...]:
        found = []
        for position, (type_, column) in enumerate(
            zip(self._result_types, description, strict=True)
        ):
            processor = type_._cached_result_processor(self._dialect, column[1])
            if processor is not None:
                found.append((position, processor))
        self.converters = tuple(found)
        return self.converters


def _defaults(compiled: SQLCompiler) -> dict[str, Callable[[], Any]]:
    """Python-side defaults SQLAlchemy would compute before running ``compiled``, by bind
    name (only plain values and zero-argument callables: that is all our models use)."""
    found: dict[str, Callable[[], Any]] = {}
    if not (compiled.insert_prefetch or compiled.update_prefetch):
        return found
    key_of = compiled._within_exec_param_key_getter
    for column, kind in [(c, "default") for c in compiled.insert_prefetch] + [
        (c, "onupdate") for c in compiled.update_prefetch
    ]:
        default = getattr(column, kind)
        if default is None or not (default.is_scalar or default.is_callable):
            raise ValueError(f"unsupported {kind} for column {column.name}")
        found[key_of(column)] = _default_maker(default.arg, default.is_scalar)
    return found


def _default_maker(arg: Any, scalar: bool) -> Callable[[], Any]:
    if scalar:
        return lambda: arg
    # SQLAlchemy wraps a zero-argument default to take the execution context: it ignores it.
    return lambda: arg(None)


class DirectStatement:
    """A Core statement compiled once per engine and run on the DBAPI cursor.

    ``statement`` is the statement, or a function of the dialect name for statements written
    differently per engine (``INSERT ... ON CONFLICT`` is dialect-specific in SQLAlchemy).
    Parameters are passed by the names of the statement's ``bindparam``s."""

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]) -> None:
        self._statement = statement
        # Per engine, as SQLAlchemy's own compiled cache; weak, so a dropped engine's forms go.
        self._forms: weakref.WeakKeyDictionary[Engine, _Compiled] = weakref.WeakKeyDictionary()

    @property
    def statement(self) -> ClauseElement | Callable[[str], ClauseElement]:
        """The Core statement (or its function of the dialect name), as given."""
        return self._statement

    def _form(self, conn: Connection) -> _Compiled:
        engine = conn.engine
        form = self._forms.get(engine)
        if form is None:
            statement = self._statement
            if not isinstance(statement, ClauseElement):
                statement = statement(conn.dialect.name)
            form = self._forms[engine] = _Compiled(statement, conn.dialect)
        return form

    def rowcount(self, conn: Connection, params: Mapping[str, Any] = _NO_PARAMS) -> int:
        """Run an INSERT, UPDATE or DELETE; the number of rows it matched."""
        form = self._form(conn)
        values = form.parameters(params)
        cursor = _cursor(conn)
        try:
            cursor.execute(form.sql, values)
            count: int = cursor.rowcount
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's handler re-raises it
            _failed(conn, exc, form.sql, values, cursor)
        return count

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT (or UPDATE) once per set of parameters, in one driver call."""
        form = self._form(conn)
        values = [form.parameters(row) for row in rows]
        cursor = _cursor(conn)
        try:
            cursor.executemany(form.sql, cast(Any, values))
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's handler re-raises it
            _failed(conn, exc, form.sql, values, cursor)

    def all(self, conn: Connection, params: Mapping[str, Any] = _NO_PARAMS) -> list[Any]:
        """Run a query; its rows (named tuples: ``row.column``)."""
        form = self._form(conn)
        values = form.parameters(params)
        cursor = _cursor(conn)
        try:
            cursor.execute(form.sql, values)
            raw = cursor.fetchall()
            converters = form.converters
            if converters is None:
                converters = form.find_converters(cursor.description)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's handler re-raises it
            _failed(conn, exc, form.sql, values, cursor)
        make = form.row._make  # type: ignore[union-attr]
        if not converters:
            return [make(row) for row in raw]
        rows = []
        for row in raw:
            columns = list(row)
            for position, convert in converters:
                columns[position] = convert(columns[position])
            rows.append(make(columns))
        return rows

    def first(self, conn: Connection, params: Mapping[str, Any] = _NO_PARAMS) -> Any | None:
        """Run a query; its first row, or None."""
        rows = self.all(conn, params)
        return rows[0] if rows else None


def run_sql(conn: Connection, sql: str) -> None:
    """Run a statement with no parameters and no result (``SAVEPOINT ...``) on the driver."""
    cursor = _cursor(conn)
    try:
        cursor.execute(sql)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's handler re-raises it
        _failed(conn, exc, sql, (), cursor)


#: key in a pooled connection's ``info``: (the DBAPI connection, its cursor for these statements)
_CURSOR = "custody_direct_cursor"


def _cursor(conn: Connection) -> Any:
    """The cursor direct statements run on, made once per DBAPI connection and kept in the
    pooled connection's ``info``: a new psycopg cursor for each statement cost some 15
    microseconds of CPU, a quarter of the client's side of a prepared statement. Statements
    of one connection run one after another (a connection serves one thread at a time), and
    every result is read in full before the next statement, so one cursor serves them all."""
    fairy = conn.connection
    dbapi = fairy.dbapi_connection
    kept = fairy.info.get(_CURSOR)
    if kept is None or kept[0] is not dbapi:  # none yet, or the connection was replaced
        kept = fairy.info[_CURSOR] = (dbapi, dbapi.cursor())  # type: ignore[union-attr]
    return kept[1]


def _failed(conn: Connection, exc: Exception, sql: str, values: Any, cursor: Any) -> None:
    """Raise ``exc`` through SQLAlchemy's handler (the usual ``sqlalchemy.exc`` class, the pool
    invalidated on a lost connection). The handler may close the cursor: it is forgotten
    first, and the connection's next statement makes a new one."""
    conn.connection.info.pop(_CURSOR, None)
    conn._handle_dbapi_exception(exc, sql, values, cursor, None)


@contextmanager
def pipelined(conn: Connection, *, commit: bool = False) -> Iterator[None]:
    """PostgreSQL: the direct statements run in the block are sent together and their results
    read once at its end - one round trip for all of them (psycopg's pipeline mode) - and,
    with ``commit``, the transaction's COMMIT goes in the same round trip. Results are not
    there to read inside the block: for statements whose outcome nobody checks (inserts, an
    update of a row already locked). If one fails, the ones after it (the COMMIT too) are not
    run, and the failure is raised as SQLAlchemy's when the block ends. The caller's own
    commit after a committing block finds nothing left to do (psycopg sends nothing when no
    transaction is open). SQLite: the statements run one by one as they come, and the caller
    commits."""
    if conn.dialect.name != "postgresql":
        yield
        return
    driver = conn.connection.driver_connection
    cursor = _cursor(conn)
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            yield
            if commit:
                driver.commit()  # type: ignore[union-attr]
    except DBAPIError:
        raise  # a statement's own failure, already raised through SQLAlchemy's handler
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's handler re-raises it
        _failed(conn, exc, "-- pipeline", (), cursor)


def transaction_alive(conn: Connection) -> bool:
    """Whether ``conn``'s database transaction can still commit: SQLite drops a transaction by
    itself on an I/O error or a full disk (later statements would each commit on their own),
    PostgreSQL refuses everything after an error outside a savepoint."""
    driver = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        return bool(getattr(driver, "in_transaction", True))
    # psycopg 3: IDLE (0: no statement ran, nothing to commit) or INTRANS (2); not INERROR (3)
    # nor UNKNOWN (4, a broken connection).
    info = getattr(driver, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is None or int(status) in (0, 2)
