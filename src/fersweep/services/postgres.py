"""PostgreSQL, as the tracking server and the study storage both use it: a URL fit to print, a
database created or dropped through the server's maintenance database."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from fersweep.errors import FersweepError


def hide_password(url: str) -> str:
    """A database URL fit to print: its password, if any, as ***."""
    return make_url(url).render_as_string(hide_password=True)


def create_database(url: str) -> bool:
    """CREATE DATABASE for a postgresql:// URL if it does not exist; True if it was created."""
    name = make_url(url).database
    with maintenance_connection(url) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    """DROP DATABASE for a postgresql:// URL (a benchmark's own, once it is done)."""
    name = sql.Identifier(make_url(url).database)
    with maintenance_connection(url) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def maintenance_connection(url: str) -> psycopg.Connection:
    """A connection to the `postgres` database of the server that `url` names."""
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    try:
        return psycopg.connect(
            admin.render_as_string(hide_password=False), connect_timeout=10, autocommit=True
        )
    except psycopg.OperationalError as error:
        raise FersweepError(
            f"PostgreSQL at {hide_password(url)} cannot be reached: "
            + " ".join(line.strip() for line in str(error).splitlines())
        ) from error
