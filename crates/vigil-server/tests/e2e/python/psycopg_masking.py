#!/usr/bin/env python3
"""Masked columns as psycopg 3 sees them, connected as an identity that sees
them masked: text and binary cursors, a server-side cursor, COPY TO STDOUT,
executemany, pipelines and prepared statements.

Usage: psycopg_masking.py CONNINFO   (the password comes from PGPASSWORD)

Prints "psycopg masking ok" as its last line when every check passed; any
failed check raises, so the exit status is non-zero.
"""

import sys

try:
    import psycopg
    from psycopg import errors, pq
except ImportError:
    sys.exit("psycopg 3 is not installed: pip install 'psycopg[binary]'")

# Customer 1's personal data in clear.
CLEAR = ("101-02-0002", "grace.lovelace1@", "4000000000079196", "555-100-0037")
SSN_MASKED = "*******0002"
EMAIL_MASKED = "****@example.com"

PLAIN = "SELECT ssn, email, card_number FROM shop.customers WHERE id = %s"
QUERIES = [
    "SELECT ssn AS x FROM shop.customers WHERE id = %s",
    "SELECT upper(ssn), lower(email) FROM shop.customers WHERE id = %s",
    "SELECT c.* FROM shop.customers c WHERE c.id = %s",
    "SELECT row_to_json(c)::text FROM shop.customers c WHERE c.id = %s",
    "SELECT array_agg(ssn) FROM shop.customers WHERE id = %s",
    "SELECT x FROM (SELECT card_number AS x FROM shop.customers WHERE id = %s) s",
    "SELECT email, phone FROM shop.customer_contacts WHERE id = %s",
]


class CheckFailed(Exception):
    pass


def check(condition, what):
    # Not `assert`: python -O would skip the checks and still print "ok".
    if not condition:
        raise CheckFailed(what)


def hidden(what, value):
    """Fails if `value` (anything: rows, bytes, a message) shows a clear value."""
    text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else repr(value)
    for clear in CLEAR:
        check(clear not in text, f"{what}: clear {clear!r} in {text!r}")
    return value


def text_and_binary(conn):
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute(PLAIN, (1,))
            if binary:
                check(cur.pgresult.fformat(0) == pq.Format.BINARY, "results came back in binary")
            row = hidden(f"plain binary={binary}", cur.fetchone())
            check(row[0] == SSN_MASKED, f"ssn binary={binary}: {row!r}")
            check(row[1] == EMAIL_MASKED, f"email binary={binary}: {row!r}")
            for query in QUERIES:
                try:
                    cur.execute(query, (1,))
                    hidden(f"{query} binary={binary}", cur.fetchall())
                except errors.InsufficientPrivilege as e:
                    hidden(f"{query} refused", str(e))
                    conn.rollback()
    conn.commit()


def server_side_cursor(conn):
    with conn.cursor(name="masked_walk") as cur:
        cur.itersize = 100
        cur.execute("SELECT id, ssn, email FROM shop.customers ORDER BY id")
        count = 0
        for row in cur:
            hidden("named cursor", row)
            if row[0] == 1:
                check(row[1] == SSN_MASKED, f"named cursor row {row!r}")
            count += 1
        check(count == 1000, f"named cursor saw {count} rows")
    conn.commit()
    with conn.cursor(name="masked_binary", binary=True) as cur:
        cur.execute("SELECT ssn, card_number FROM shop.customers WHERE id <= 3")
        hidden("binary named cursor", cur.fetchall())
    conn.commit()


def copy_out(conn):
    with conn.cursor() as cur:
        data = bytearray()
        with cur.copy("COPY (SELECT ssn FROM shop.customers WHERE id=1) TO STDOUT") as copy:
            for chunk in copy:
                data += chunk
        hidden("COPY text", data)
        check(SSN_MASKED.encode() in data, f"COPY text: {bytes(data)!r}")

        # rows() parses the text format (csv is read as raw chunks above).
        with cur.copy("COPY shop.customers (id, ssn, email) TO STDOUT") as copy:
            rows = list(copy.rows())
        hidden("COPY text rows", rows)
        check(len(rows) == 1000, f"COPY text rows: {len(rows)}")

        with cur.copy("COPY (SELECT ssn, email FROM shop.customers WHERE id = 1) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["text", "text"])
            rows = list(copy.rows())
        hidden("COPY binary", rows)
        check(rows == [(SSN_MASKED, EMAIL_MASKED)], f"COPY binary rows {rows!r}")
    conn.commit()


def prepared_and_executemany(conn):
    # psycopg prepares server-side from the fifth execution on; prepare=True at once.
    for i in range(1, 8):
        for binary in (False, True):
            row = conn.cursor(binary=binary).execute(PLAIN, (i,)).fetchone()
            hidden(f"repeated {i}", row)
    row = conn.execute(PLAIN, (1,), prepare=True).fetchone()
    hidden("prepare=True", row)
    check(row[0] == SSN_MASKED, f"prepared row {row!r}")
    prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql").fetchone()[0]
    check(prepared >= 1, f"expected server-side prepared statements, found {prepared}")

    with conn.cursor() as cur:
        cur.executemany(
            "SELECT ssn, email FROM shop.customers WHERE id = %s",
            [(i,) for i in range(1, 6)],
            returning=True,
        )
        results = []
        while True:
            results.append(cur.fetchall())
            if not cur.nextset():
                break
        hidden("executemany returning", results)
        check(len(results) == 5, f"executemany results {len(results)}")

    check(psycopg.Pipeline.is_supported(), "libpq supports pipeline mode")
    with conn.pipeline():
        cursors = [conn.execute(PLAIN, (i,), binary=bool(i % 2)) for i in range(1, 6)]
    hidden("pipeline", [c.fetchall() for c in cursors])
    conn.commit()


def refusals_and_errors(conn):
    try:
        conn.execute("SELECT id FROM shop.customers WHERE ssn = %s", ("101-02-0002",))
    except errors.InsufficientPrivilege as e:
        check("vigil.masking.inference" in str(e), f"refusal: {e}")
    else:
        raise CheckFailed("filtering on a masked column was answered")
    conn.rollback()
    try:
        conn.execute("SELECT card_number::int FROM shop.customers WHERE id = 1")
    except psycopg.Error as e:
        hidden("cast error", (str(e), e.diag.message_detail, e.diag.context))
    conn.rollback()
    notices = []
    conn.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_detail)))
    try:
        conn.execute("DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM shop.customers WHERE id = 1); END $$")
    except psycopg.Error as e:
        hidden("DO refused", str(e))
    conn.rollback()
    hidden("notices", notices)
    check(conn.execute("SELECT 1").fetchone() == (1,), "usable afterwards")
    conn.commit()


def main(conninfo):
    with psycopg.connect(conninfo) as conn:
        text_and_binary(conn)
        server_side_cursor(conn)
        copy_out(conn)
        prepared_and_executemany(conn)
        refusals_and_errors(conn)
    print("psycopg masking ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
