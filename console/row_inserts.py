"""Inserting new rows of one or more tables: the request-creation hot path.

A request's creation writes the request, its event, its policy evaluation, maybe its decision,
and its audit records. Two ways, chosen by size:

- A few rows (a lone request, the usual case at low load): every table's rows in one statement
  (data-modifying CTEs, `WITH _0 AS (INSERT ...) INSERT ...`). One round trip instead of one or
  two per table; round trips are most of what a lone request waits on. Each table's rows go as
  ONE parameter, a JSON array that PostgreSQL turns back into rows (`jsonb_to_recordset`):
  the statement's text is then the same for any number of rows, so it is prepared once
  (console.hot_statements), and psycopg converts it once instead of on every call (it keeps
  no conversion for a statement of more than 50 parameters, and a request's rows with their
  audit records had about 120). Encoding the JSON is one C call per table; adapting each value
  was one Python call per value.
- More rows (a batch under load): a COPY per table. The values are formatted by psycopg's C
  dumpers; in a multi-row INSERT they are quoted into the SQL text in Python, which costs about
  three times the CPU from a few dozen rows on (measured in the creation batches of
  `make bench`). Round trips then matter less: a batch shares them.

Either way, not bulk_create: it prepares every value through the insert compiler (4.4 ms for
60 requests' rows against 1.3 ms through COPY). Here the statements are planned once per model,
and each value goes through its field only if the field needs it (JSON with the field's encoder,
decimals, IP addresses); the rest pass as they are.

It does what bulk_create does for new, unsaved instances: defaults are already on the instance
(set when it was built), auto_now/auto_now_add fields are set as their pre_save sets them (to
one moment for all the rows of an insert), generated columns are left to the database.
Database errors come out as Django's (an IntegrityError for a unique key stays an
IntegrityError). Unlike bulk_create there is no RETURNING: an instance gets its id only when
asked for (ids_assign: reserved from the table's sequence first, one query). Elsewhere than
PostgreSQL it is bulk_create.
"""

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from operator import attrgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.operations import get_json_dumps
from django.utils import timezone

from console.hot_statements import Statement, statements_deferred, statements_rows

# Fields whose Python value is what psycopg should send: no per-value preparation needed.
# Subclasses (EmailField, PositiveIntegerField, ...) prepare nothing more either.
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.FloatField,
    models.UUIDField,
    models.DateTimeField,
)


# The text of the empty JSON values, by type: no encoder needed for them.
_EMPTY_JSON: dict[type, str] = {dict: "{}", list: "[]"}

# Up to this many rows in all, one statement; more, a COPY per table (see above).
ONE_STATEMENT_MAX_ROWS = 12


Getter = Callable[[models.Model, BaseDatabaseWrapper], Any]


# Compared and hashed by identity: one per model and id mode (_plan_for caches them), and the
# statement of a set of them is looked up on every insert (_one_statement_sql), where hashing
# every field's getter each time would be wasted.
@dataclass(frozen=True, eq=False)
class _Plan:
    copy_sql: str
    # A row's values in the columns' order: the plain fields' (first) in one call, then a
    # getter per other field, which turns the instance into the value to send.
    copy_plain: Callable[[models.Model], tuple[Any, ...]]
    copy_others: tuple[Getter, ...]
    # The rows as one JSON parameter: the INSERT ... SELECT; the plain fields' columns and
    # values (floats aside: JSON has no NaN); per other field its column and a getter for a
    # value JSON can carry.
    json_sql: str
    json_plain_columns: tuple[str, ...]
    json_plain: Callable[[models.Model], tuple[Any, ...]]
    json_others: tuple[tuple[str, Getter], ...]
    # auto_now(_add) fields, set on each instance before its values are read (_stamp).
    stamped: tuple[str, ...]


@dataclass
class IdsReservation:
    """Ids for `count` new rows of `model`, taken from its sequence in a round trip that goes
    anyway (console.hot_statements.RidesAlong; on PostgreSQL only), for ids_assign."""

    model: type[models.Model]
    count: int
    ids: list[int] | None = None

    def statement(self) -> tuple[str, list[Any]]:
        pk = self.model._meta.pk
        assert pk is not None
        return _NEXT_IDS, [self.model._meta.db_table, pk.column, self.count, self.count]

    def take(self, rows: list[tuple[Any, ...]]) -> None:
        self.ids = [value for (value,) in rows]


# The LIMIT changes no result: it lets PostgreSQL plan the prepared statement once. A bare
# generate_series($n) is estimated at 1,000 rows in the plan made for any $n, so PostgreSQL
# found it dearer than the plan for n = 3 and planned every execution again (pg_prepared_statements
# counted custom plans only); with the LIMIT the one plan for any $n wins after five executions.
_NEXT_IDS = (
    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s::int) LIMIT %s::int"
)


def ids_reservation(model: type[models.Model], count: int) -> IdsReservation | None:
    """Ids to take along with another round trip, for ids_assign; None elsewhere than
    PostgreSQL, where the insert numbers the rows."""
    return IdsReservation(model, count) if connection.vendor == "postgresql" else None


def ids_assign(objs: Sequence[models.Model], *, reserved: IdsReservation | None = None) -> None:
    """Give new instances of one model their primary keys now, from the table's sequence.

    For rows that others refer to in the same transaction, or whose ids the caller returns.
    One query, unless `reserved` already holds as many ids (taken along with another round
    trip); may run before a lock is taken so that the insert under it is shorter. Elsewhere
    than PostgreSQL nothing happens here: rows_insert's bulk_create sets them.
    """
    if not objs or connection.vendor != "postgresql":
        return
    if reserved is not None and reserved.ids is not None and len(reserved.ids) == len(objs):
        ids = reserved.ids
    else:
        reservation = IdsReservation(type(objs[0]), len(objs))
        (rows,) = statements_rows([reservation.statement()])
        reservation.take(rows)
        assert reservation.ids is not None
        ids = reservation.ids
    for obj, value in zip(objs, ids, strict=True):
        obj.pk = value


def rows_insert(
    *groups: Sequence[models.Model],
    then: Statement | None = None,
    also: Sequence[Statement] = (),
    deferred: bool = False,
) -> list[tuple[Any, ...]]:
    """Insert new instances, each group of one model: in one statement on PostgreSQL if they
    are few, else a COPY per group.

    Instances given ids (ids_assign) are stored with them; otherwise the database numbers the
    rows and the instances keep `pk = None` (for rows nothing refers to: events, evaluations).

    `then`: a statement (SQL, parameters) to run right after, which sees the new rows (the
    audit chain head's move, whose guard checks the newest record; the head's lock, taken once
    the caller's rows are in). With few rows it goes in the same round trip, as a second
    statement of the same query. Returns the rows `then` selects, if it selects any.
    `also`: statements to run after the rows and before `then`, in the same round trip (a
    decision's status update, before the audit head's lock); what they select is not returned.
    `deferred`: nothing is selected, so in a transaction the statements may wait for its next
    round trip, its COMMIT's if nothing else (console.hot_statements.statements_deferred). A
    COPY still runs at once; only the statements after it wait. Returns nothing then.
    """
    groups = tuple(group for group in groups if group)
    after = [*also, *([then] if then is not None else [])]
    # The connection itself, not the thread-local proxy: looked up once, not per value.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        for group in groups:
            type(group[0])._default_manager.bulk_create(group)
        return _after_rows(after, then, deferred=deferred)
    plans = [_group_plan(group) for group in groups]
    _stamp(groups, plans)
    if not groups:
        selected = _after_rows(after, then, deferred=deferred)
    elif sum(len(group) for group in groups) <= ONE_STATEMENT_MAX_ROWS:
        selected = _insert_in_one_statement(groups, plans, db, after, then, deferred=deferred)
    else:
        with db.cursor() as cursor, db.wrap_database_errors:
            for group, plan in zip(groups, plans, strict=True):
                with cursor.cursor.copy(plan.copy_sql) as copy:
                    for obj in group:
                        copy.write_row(
                            (*plan.copy_plain(obj), *[get(obj, db) for get in plan.copy_others])
                        )
                if db.queries_logged:
                    # Counted like every other statement (query-count tests, the debug toolbar).
                    db.queries_log.append({"sql": plan.copy_sql, "time": "0.000"})
        selected = _after_rows(after, then, deferred=deferred)
    alias = db.alias
    for group in groups:
        for obj in group:
            # As bulk_create leaves them: saved, so a later save() updates instead of inserting.
            obj._state.adding = False
            obj._state.db = alias
    return selected


def _after_rows(
    after: list[Statement], then: Statement | None, *, deferred: bool = False
) -> list[tuple[Any, ...]]:
    """Run the statements that follow the rows, in one round trip; the rows `then` (the last)
    selects, if any. Prepared, as every fixed statement of the hot path is
    (console.hot_statements): the audit head's lock after a COPY, or alone."""
    if not after:
        return []
    if deferred:
        statements_deferred(after)
        return []
    results = statements_rows(after)
    return results[-1] if then is not None else []


def _stamp(groups: Sequence[Sequence[models.Model]], plans: list[_Plan]) -> None:
    """Set the auto_now(_add) fields, as their pre_save would: to one moment for every row,
    as PostgreSQL's now() is its transaction's (a clock read per row was about a tenth of the
    CPU these values cost)."""
    now = None
    for group, plan in zip(groups, plans, strict=True):
        if plan.stamped:
            now = now or timezone.now()
            for obj in group:
                for attname in plan.stamped:
                    setattr(obj, attname, now)


def _group_plan(group: Sequence[models.Model]) -> _Plan:
    with_ids = group[0].pk is not None
    if any((obj.pk is not None) != with_ids for obj in group):
        raise ValueError("give every instance an id, or none")
    return _plan_for(type(group[0]), ids=with_ids)


def _insert_in_one_statement(
    groups: Sequence[Sequence[models.Model]],
    plans: list[_Plan],
    db: BaseDatabaseWrapper,
    after: list[Statement],
    then: Statement | None,
    *,
    deferred: bool = False,
) -> list[tuple[Any, ...]]:
    params = [
        json.dumps(
            [_json_row(plan, obj, db) for obj in group],
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_text,
        )
        for group, plan in zip(groups, plans, strict=True)
    ]
    # `then` is a statement of its own (it must see the rows), sent in the same round trip.
    # Both are prepared once per connection: their texts depend only on the tables written.
    sql = _one_statement_sql(tuple(plans))
    if deferred:
        statements_deferred([(sql, params), *after])
        return []
    results = statements_rows([(sql, params), *after])
    return results[-1] if then is not None else []


@cache
def _one_statement_sql(plans: tuple[_Plan, ...]) -> str:
    *first, last = [plan.json_sql for plan in plans]
    # A data-modifying CTE runs whether or not anything reads it; foreign keys are checked at
    # commit (Django declares them deferrable), so the order of the parts does not matter.
    if not first:
        return last
    return "WITH " + ", ".join(f"_{n} AS ({part})" for n, part in enumerate(first)) + " " + last


@cache
def _plan_for(model: type[models.Model], *, ids: bool) -> _Plan:
    meta = model._meta
    written = [
        field
        for field in meta.concrete_fields
        if not field.generated and (ids or not field.primary_key)
    ]
    # Plain fields first, floats last among them: their values are read in one call
    # (operator.attrgetter), instead of a Python call per value, about eighty per request.
    plain = [field for field in written if _is_plain(field)]
    floats: list[models.Field[Any, Any]] = [
        field for field in plain if isinstance(field, models.FloatField)
    ]
    plain = [field for field in plain if field not in floats] + floats
    others = [field for field in written if field not in plain]
    fields = (*plain, *others)
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = [quote(str(field.column)) for field in fields]  # concrete: never None
    # Each JSON value is read as its column's type (JSON columns travel as their text, which
    # the field's own encoder wrote, and are cast); the rows come out in the array's order.
    selected, defined = [], []
    for field, column in zip(fields, columns, strict=True):
        is_json = isinstance(field, models.JSONField)
        selected.append(f"r.{column}::jsonb" if is_json else f"r.{column}")
        defined.append(f"{column} {'text' if is_json else field.db_type(connection)}")
    json_sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (a model's own table)
        f"SELECT {', '.join(selected)} FROM jsonb_to_recordset(%s::jsonb) "
        f"AS r({', '.join(defined)})"
    )
    json_plain = plain[: len(plain) - len(floats)]
    json_others = [field for field in fields if field not in json_plain]
    return _Plan(
        copy_sql=f"COPY {table} ({', '.join(columns)}) FROM STDIN",
        copy_plain=_values_of([field.attname for field in plain]),
        copy_others=tuple(_getter(field) for field in others),
        json_sql=json_sql,
        json_plain_columns=tuple(str(field.column) for field in json_plain),
        json_plain=_values_of([field.attname for field in json_plain]),
        json_others=tuple(
            (str(field.column), _json_getter(field, _getter(field))) for field in json_others
        ),
        stamped=tuple(field.attname for field in plain if _is_stamped(field)),
    )


def _values_of(attnames: list[str]) -> Callable[[models.Model], tuple[Any, ...]]:
    """A function reading these attributes of an instance, as a tuple, in one call."""
    if not attnames:
        return lambda obj: ()
    if len(attnames) == 1:
        one = attrgetter(attnames[0])
        return lambda obj: (one(obj),)
    return attrgetter(*attnames)


def _json_row(plan: _Plan, obj: models.Model, db: BaseDatabaseWrapper) -> dict[str, Any]:
    row = dict(zip(plan.json_plain_columns, plan.json_plain(obj), strict=True))
    for column, get in plan.json_others:
        row[column] = get(obj, db)
    return row


def _json_getter(field: "models.Field[Any, Any]", get: Getter) -> Getter:
    """`get`, then, for a float, the value in a form JSON carries and the column reads back.
    Other values go as they are: JSON carries strings, numbers, booleans and null, and the
    encoder turns anything else into its text (_json_text)."""
    if not isinstance(field, models.FloatField):
        return get  # a JSON field's value is its JSON text already

    def finite(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
        value = get(obj, db)
        # NaN and the infinities are no JSON numbers; PostgreSQL reads "nan" and "inf" as them.
        return value if value is None or math.isfinite(value) else str(value)

    return finite


def _json_text(value: Any) -> str:
    """What JSON cannot carry, as the text its column reads (the encoder's `default`)."""
    if isinstance(value, date):  # datetimes too: ISO 8601, with their offset
        return value.isoformat()
    # UUIDs, decimals, IP addresses (psycopg's Inet): their text is their input form.
    return str(value)


def _is_plain(field: "models.Field[Any, Any]") -> bool:
    """Whether the field's value on the instance is what psycopg should send, as it is (for
    auto_now(_add) fields, once rows_insert has set it: _is_stamped)."""
    if not isinstance(field, _PLAIN_FIELDS):
        return False
    pre_save = type(field).pre_save
    # Django's DateTimeField.pre_save reads the attribute, unless it stamps it.
    return pre_save is models.Field.pre_save or pre_save is models.DateTimeField.pre_save


def _is_stamped(field: "models.Field[Any, Any]") -> bool:
    """An auto_now(_add) field of Django's own DateTimeField: its value is the insert's moment."""
    return (
        isinstance(field, models.DateTimeField)
        and type(field).pre_save is models.DateTimeField.pre_save
        and bool(field.auto_now or field.auto_now_add)
    )


def _getter(field: "models.Field[Any, Any]") -> Callable[[models.Model, BaseDatabaseWrapper], Any]:
    attname = field.attname
    if isinstance(field, models.JSONField):
        # The JSON's text, encoded here with the field's encoder, as Django's adapter would:
        # the column reads it as text (COPY's text format, the one statement's cast), instead
        # of psycopg calling back into Python to dump an adapter object for every value.
        dumps = get_json_dumps(field.encoder)

        def json_text(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            value = field.get_prep_value(field.pre_save(obj, add=True))
            if value is None:
                return None
            if not value and type(value) in _EMPTY_JSON:  # most of a request's: {} and []
                return _EMPTY_JSON[type(value)]
            return dumps(value)

        return json_text
    if isinstance(field, models.GenericIPAddressField):
        # Its text (NULL when blank), as Django's adapter would send it, instead of an adapter
        # object psycopg dumps by calling back into Python; the column reads the text.
        def address(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            return field.get_prep_value(getattr(obj, attname)) or None

        return address
    if isinstance(field, models.ForeignKey):

        def related(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            value = getattr(obj, attname)
            if value is None and field.is_cached(obj):
                # Assigned before it was saved, as bulk_create allows: its id now.
                target = field.get_cached_value(obj)
                if target is not None:
                    if target.pk is None:
                        raise ValueError(f"{field.name!r} refers to an unsaved object")
                    value = target.pk
                    setattr(obj, attname, value)
            return value

        return related
    if _is_plain(field):

        def plain(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            return getattr(obj, attname)

        return plain

    def prepared(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
        return field.get_db_prep_save(field.pre_save(obj, add=True), db)

    return prepared
