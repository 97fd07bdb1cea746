#!/usr/bin/env python3
"""One psycopg 3 session through Vigil, doing what drivers do beyond simple
queries: pipelined executemany, parameters, prepared statements, COPY both
ways, a server-side cursor, rollbacks, errors and binary results.

Usage: psycopg_session.py CONNINFO   (the password comes from PGPASSWORD)

Prints "psycopg ok" as its last line when every check passed; any failed check
raises, so the exit status is non-zero.
"""

import sys
import zlib
from datetime import datetime, timezone
from decimal import Decimal

try:
    import psycopg
    from psycopg import errors, pq
except ImportError:
    sys.exit("psycopg 3 is not installed: pip install 'psycopg[binary]'")

ROWS = 10_000


class CheckFailed(Exception):
    pass


def check(condition, what):
    # Not `assert`: python -O would skip the checks and still print "ok".
    if not condition:
        raise CheckFailed(what)


def label(i):
    """Text COPY has to escape (tabs, newlines, backslashes, non-ASCII), and some NULLs."""
    if i % 1000 == 0:
        return None
    if i % 7 == 0:
        return f"tab\there \\ back\nline é {i}"
    return f"row-{i}"


def amount(i):
    return i * 7 - 3


def copied_row(i):
    return (i, label(i), amount(i))


def checksum(rows):
    """Count, amount total and a CRC of every row; independent of row order."""
    count = total = crc = 0
    for i, text, amt in rows:
        count += 1
        total += amt
        crc ^= zlib.crc32(f"{i}:{text!r}:{amt}".encode())
    return count, total, crc


EXPECTED = checksum(copied_row(i) for i in range(ROWS))


def queries_with_parameters(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int)")
        cur.executemany(
            "INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)",
            [(i, f"item {i}", i % 10) for i in range(1, 201)],
        )
        conn.commit()

        cur.execute("SELECT name, qty FROM items WHERE id = %s", (42,))
        check(cur.fetchall() == [("item 42", 2)], "select by id")

        cur.execute(
            "SELECT count(*) FROM items WHERE qty >= %(min)s AND name LIKE %(pattern)s",
            {"min": 5, "pattern": "item 1%"},
        )
        expected = sum(1 for i in range(1, 201) if i % 10 >= 5 and f"item {i}".startswith("item 1"))
        check(cur.fetchone() == (expected,), "select with named parameters")

        cur.execute("SELECT %s::text IS NULL, %s, %s", (None, "it's \"quoted\"", "ünï"))
        check(cur.fetchone() == (True, "it's \"quoted\"", "ünï"), "null and quoting round trip")


def pipeline(conn):
    # Needs libpq 14+, which every psycopg[binary] wheel bundles.
    check(psycopg.Pipeline.is_supported(), "libpq supports pipeline mode")
    with conn.pipeline():
        cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(20)]
    check([c.fetchone()[0] for c in cursors] == [i * 2 for i in range(20)], "pipelined results")


def prepared_statements(conn):
    # psycopg prepares a query server-side from its fifth execution on.
    for i in range(1, 11):
        row = conn.execute("SELECT name FROM items WHERE id = %s", (i,)).fetchone()
        check(row == (f"item {i}",), f"prepared select {i}")
    row = conn.execute("SELECT qty FROM items WHERE id = %s", (17,), prepare=True).fetchone()
    check(row == (7,), "explicitly prepared select")
    prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql").fetchone()[0]
    check(prepared >= 2, f"expected server-side prepared statements, found {prepared}")
    conn.commit()


def copy_in_and_out(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE copied (id int PRIMARY KEY, label text, amount bigint)")
        with cur.copy("COPY copied (id, label, amount) FROM STDIN") as copy:
            for i in range(ROWS):
                copy.write_row(copied_row(i))
        conn.commit()

        cur.execute("SELECT count(*), sum(amount), count(*) FILTER (WHERE label IS NULL) FROM copied")
        check(cur.fetchone() == (ROWS, EXPECTED[1], ROWS // 1000), "rows after COPY FROM STDIN")

        with cur.copy("COPY copied (id, label, amount) TO STDOUT") as copy:
            copy.set_types(["int4", "text", "int8"])
            got = checksum(copy.rows())
        check(got == EXPECTED, f"COPY TO STDOUT checksum {got} != {EXPECTED}")
        conn.commit()


def server_side_cursor(conn):
    count = total = 0
    with conn.cursor(name="walk_copied") as cur:
        cur.itersize = 500
        cur.execute("SELECT id, amount FROM copied ORDER BY id")
        for i, amt in cur:
            check(i == count, f"cursor row {count} has id {i}")
            if count == 0:
                # The rows are fetched in batches from a cursor on the server.
                open_cursors = conn.execute(
                    "SELECT count(*) FROM pg_cursors WHERE name = 'walk_copied'"
                ).fetchone()[0]
                check(open_cursors == 1, "named cursor exists on the server")
            count += 1
            total += amt
    check((count, total) == (ROWS, EXPECTED[1]), f"cursor saw {count} rows totalling {total}")
    conn.commit()


def rollbacks_leave_nothing(conn):
    conn.execute("CREATE TABLE rolled (id int)")
    conn.commit()

    with conn.cursor() as cur:
        cur.executemany("INSERT INTO rolled VALUES (%s)", [(i,) for i in range(50)])
        cur.execute("SELECT count(*) FROM rolled")
        check(cur.fetchone() == (50,), "rows visible inside the transaction")
    conn.rollback()
    check(conn.execute("SELECT count(*) FROM rolled").fetchone() == (0,), "rows after rollback")
    conn.commit()

    with conn.transaction():
        conn.execute("INSERT INTO rolled VALUES (1)")
        raise psycopg.Rollback()
    check(conn.execute("SELECT count(*) FROM rolled").fetchone() == (0,), "rows after Rollback")
    conn.commit()


def errors_leave_connection_usable(conn):
    try:
        conn.execute("SELECT 1 / 0")
    except errors.DivisionByZero as e:
        check(e.sqlstate == "22012", f"sqlstate {e.sqlstate}")
    else:
        raise CheckFailed("division by zero did not raise")
    check(conn.info.transaction_status == pq.TransactionStatus.INERROR, "transaction is aborted")
    conn.rollback()
    check(conn.execute("SELECT 2 + 2").fetchone() == (4,), "usable after an error")
    conn.commit()

    # An error in the middle of a pipelined executemany.
    try:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items (id, name) VALUES (%s, %s)", [(1000, "new"), (1, "dup"), (1001, "x")])
    except errors.UniqueViolation:
        pass
    else:
        raise CheckFailed("duplicate key did not raise")
    conn.rollback()
    check(
        conn.execute("SELECT count(*) FROM items WHERE id >= 1000").fetchone() == (0,),
        "failed executemany left rows",
    )
    conn.commit()


def binary_results(conn):
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, label, amount, %b::numeric, %b::bytea, %b::timestamptz, %b::int[] "
            "FROM copied WHERE id = ANY(%b) ORDER BY id",
            (Decimal("12.50"), b"\x00\xff\x10", when, [1, 2, 3], [1, 7, 1000]),
            binary=True,
        )
        check(cur.pgresult.fformat(0) == pq.Format.BINARY, "results came back in binary")
        extra = (Decimal("12.50"), b"\x00\xff\x10", when, [1, 2, 3])
        expected = [copied_row(i) + extra for i in (1, 7, 1000)]
        got = cur.fetchall()
        check(got == expected, f"binary rows {got!r}")
    conn.commit()


def main(conninfo):
    with psycopg.connect(conninfo) as conn:
        queries_with_parameters(conn)
        pipeline(conn)
        prepared_statements(conn)
        copy_in_and_out(conn)
        server_side_cursor(conn)
        rollbacks_leave_nothing(conn)
        errors_leave_connection_usable(conn)
        binary_results(conn)
    print("psycopg ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
