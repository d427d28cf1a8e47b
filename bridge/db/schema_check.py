"""Compare the SQLAlchemy metadata with the tables a live database really has."""

from __future__ import annotations

from sqlalchemy import MetaData, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

_DIALECT = postgresql.dialect()


def _type_name(sa_type) -> str:
    return sa_type.compile(dialect=_DIALECT)


def metadata_differences(metadata: MetaData, conn: Connection) -> list[str]:
    """Every way the live tables differ from `metadata`: columns, types, nullability, keys.

    Returns human-readable lines; an empty list means they agree.
    """
    inspector = inspect(conn)
    problems: list[str] = []
    for table in metadata.sorted_tables:
        where = f"{table.schema}.{table.name}"
        if not inspector.has_table(table.name, schema=table.schema):
            problems.append(f"{where}: in metadata, not in the database")
            continue
        live = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
        declared = {c.name: c for c in table.columns}
        for name in declared.keys() - live.keys():
            problems.append(f"{where}.{name}: in metadata, not in the database")
        for name in live.keys() - declared.keys():
            problems.append(f"{where}.{name}: in the database, not in metadata")
        for name in declared.keys() & live.keys():
            want, have = declared[name], live[name]
            if _type_name(want.type) != _type_name(have["type"]):
                problems.append(f"{where}.{name}: type {_type_name(have['type'])} in the database, "
                                f"{_type_name(want.type)} in metadata")
            if want.nullable != have["nullable"]:
                problems.append(f"{where}.{name}: nullable={have['nullable']} in the database, "
                                f"{want.nullable} in metadata")
            if want.computed is not None or have.get("computed"):  # generated: compare that, not defaults
                if (want.computed is None) != (not have.get("computed")):
                    only_in = "metadata" if want.computed else "the database"
                    problems.append(f"{where}.{name}: generated in {only_in} only")
            elif (want.server_default is None) != (have["default"] is None and not have.get("identity")):
                problems.append(f"{where}.{name}: server default {have['default']!r} in the database, "
                                f"{'none' if want.server_default is None else 'one'} in metadata")
        live_pk = inspector.get_pk_constraint(table.name, schema=table.schema)["constrained_columns"]
        if sorted(live_pk) != sorted(c.name for c in table.primary_key.columns):
            problems.append(f"{where}: primary key {live_pk} in the database")
        live_fks = {
            (tuple(fk["constrained_columns"]), f"{fk['referred_schema']}.{fk['referred_table']}",
             tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(table.name, schema=table.schema)
        }
        declared_fks = {
            (tuple(fk.column_keys), f"{fk.referred_table.schema}.{fk.referred_table.name}",
             tuple(e.column.name for e in fk.elements))
            for fk in table.foreign_key_constraints
        }
        for fk in sorted(declared_fks - live_fks):
            problems.append(f"{where}: foreign key {fk} in metadata, not in the database")
        for fk in sorted(live_fks - declared_fks):
            problems.append(f"{where}: foreign key {fk} in the database, not in metadata")
    return problems
