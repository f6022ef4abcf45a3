"""Inserting many new rows through PostgreSQL's COPY: the request-creation hot path.

bulk_create prepares every value of every row through the field and insert-compiler machinery,
then psycopg quotes the UNNEST arrays in Python. Creating requests in batches of 60, that was
most of the writer's CPU: 4.4 ms to insert 60 approval requests against 1.3 ms through COPY
(`make bench` measures the whole path). COPY takes the values as they are, formatted by
psycopg's C dumpers, and the server plans nothing.

It does what bulk_create does for new, unsaved instances: defaults are already on the instance
(set when it was built), auto_now/auto_now_add fields go through pre_save, plain values pass
as they are and every other field through its own get_db_prep_save (JSON with the field's
encoder, decimals, IP addresses), generated columns are left to the database. Database errors
come out as Django's (an IntegrityError for a unique key stays an IntegrityError).

Not the same as bulk_create: no RETURNING, so an instance gets its id only when asked for
(ids_assign: reserved from the table's sequence first, one query), and the statement is not in
Django's query log. Elsewhere than PostgreSQL it is bulk_create.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

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


@dataclass(frozen=True)
class _Plan:
    copy_sql: str
    # Per field: turns the instance into the value to send.
    getters: tuple[Callable[[models.Model, BaseDatabaseWrapper], Any], ...]


def ids_assign(objs: Sequence[models.Model]) -> None:
    """Give new instances of one model their primary keys now, from the table's sequence.

    For rows that others refer to in the same transaction, or whose ids the caller returns.
    One query; may run before a lock is taken so that the insert under it is shorter. Elsewhere
    than PostgreSQL nothing happens here: rows_insert's bulk_create sets them.
    """
    if not objs or connection.vendor != "postgresql":
        return
    pk = type(objs[0])._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [type(objs[0])._meta.db_table, pk.column, len(objs)],
        )
        for obj, (value,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = value


def rows_insert(objs: Sequence[models.Model]) -> None:
    """Insert new instances of one model.

    Instances given ids (ids_assign) are stored with them; otherwise the database numbers the
    rows and the instances keep `pk = None` (for rows nothing refers to: events, evaluations).
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs)
        return
    with_ids = objs[0].pk is not None
    if any((obj.pk is not None) != with_ids for obj in objs):
        raise ValueError("give every instance an id, or none")
    plan = _plan_for(model, ids=with_ids)
    # The connection itself, not the thread-local proxy: looked up once, not per value.
    db = connections[connection.alias]
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(plan.copy_sql) as copy,
    ):
        for obj in objs:
            copy.write_row([get(obj, db) for get in plan.getters])
    for obj in objs:
        # As bulk_create leaves them: saved, so a later save() updates instead of inserting.
        obj._state.adding = False
        obj._state.db = connection.alias


@cache
def _plan_for(model: type[models.Model], *, ids: bool) -> _Plan:
    meta = model._meta
    fields = tuple(
        field
        for field in meta.concrete_fields
        if not field.generated and (ids or not field.primary_key)
    )
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)  # concrete: never None
    return _Plan(
        copy_sql=f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN",
        getters=tuple(_getter(field) for field in fields),
    )


def _getter(field: "models.Field[Any, Any]") -> Callable[[models.Model, BaseDatabaseWrapper], Any]:
    attname = field.attname
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
    prepares_on_save = type(field).pre_save is not models.Field.pre_save
    if isinstance(field, _PLAIN_FIELDS) and not prepares_on_save:

        def plain(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            return getattr(obj, attname)

        return plain
    if isinstance(field, _PLAIN_FIELDS):  # auto_now(_add): the value is set now, as save() does

        def stamped(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
            return field.pre_save(obj, add=True)

        return stamped

    def prepared(obj: models.Model, db: BaseDatabaseWrapper) -> Any:
        return field.get_db_prep_save(field.pre_save(obj, add=True), db)

    return prepared
