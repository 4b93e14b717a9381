#!/usr/bin/python3
"""psycopg 3 behaviours for the client matrix (tests/.../ClientMatrix).

Usage: psycopg_matrix.py CASE CONNINFO SUFFIX   (the password comes from PGPASSWORD)

Prints one JSON document: {"case": CASE, "lines": [...]}, a transcript of what the client saw. The C# test runs the
same case direct and through the gateway and compares the transcripts; the suffix is replaced by {sfx} there.
"""
import json
import sys
import threading
import time

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool

lines = []


def add(label, value=None):
    lines.append(label if value is None else f"{label}: {value}")


def check(condition, description):
    if not condition:
        add("CHECK FAILED: " + description)


def describe(exc):
    state = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = diag.message_primary if diag is not None and diag.message_primary else str(exc).splitlines()[0]
    return f"{type(exc).__name__} [{state}] {message}"


def attempt(label, action):
    try:
        action()
        add(label, "ok")
    except psycopg.Error as exc:
        add(label, describe(exc))


def query(conn, text, params=None, **kwargs):
    try:
        cur = conn.execute(text, params, **kwargs)
        rows = cur.fetchall() if cur.description else []
        add(f"{text} -> {cur.statusmessage}", rows)
    except psycopg.Error as exc:
        add(f"{text} -> {describe(exc)}")


def case_pool(conninfo, sfx):
    """Check out and return connections many times; a reset callback (DISCARD ALL, or RESET ALL) undoes the session's settings."""
    for statement in ("DISCARD ALL", "RESET ALL"):
        reset_errors = []

        def reset(conn):
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                reset_errors.append(describe(exc))
                raise

        # DISCARD ALL also drops server-side prepared statements, which psycopg would prepare after 5 executions of a
        # query and then miss ("_pg3_0 does not exist"): as psycopg's documentation advises, no automatic preparation.
        kwargs = {"autocommit": True, "prepare_threshold": None}
        pool = ConnectionPool(conninfo, min_size=1, max_size=2, kwargs=kwargs, reset=reset, open=True, timeout=20)
        leaked = 0
        try:
            for i in range(200):
                with pool.connection() as conn:
                    if conn.execute("SHOW statement_timeout").fetchone()[0] != "0":
                        leaked += 1
                    conn.execute("SET statement_timeout = '1234ms'")
            stats = pool.get_stats()
        finally:
            pool.close()
        add(f"reset={statement}: checkouts", 200)
        add(f"reset={statement}: checkouts that saw the previous user's statement_timeout", leaked)
        add(f"reset={statement}: reset errors", sorted(set(reset_errors)))
        add(f"reset={statement}: connections opened by the pool", stats.get("connections_num"))
        check(leaked == 0 and not reset_errors, f"every checkout starts from a session reset with {statement}")

    # The default pool (no reset callback, not autocommit): leaving the block with an exception rolls the transaction
    # back before the connection returns; leaving it normally commits.
    pool = ConnectionPool(conninfo, min_size=1, max_size=1, open=True, timeout=20)
    try:
        with pool.connection() as conn:
            conn.execute(f"CREATE TABLE pool_{sfx} (id int)")
        try:
            with pool.connection() as conn:
                conn.execute(f"INSERT INTO pool_{sfx} VALUES (1)")
                raise KeyError("the job failed")
        except KeyError:
            pass
        with pool.connection() as conn:
            add("rows after a failed block", conn.execute(f"SELECT count(*) FROM pool_{sfx}").fetchone()[0])
            conn.execute(f"INSERT INTO pool_{sfx} VALUES (2)")
        with pool.connection() as conn:
            add("rows after a committed block", conn.execute(f"SELECT count(*) FROM pool_{sfx}").fetchone()[0])
        stats = pool.get_stats()
    finally:
        pool.close()
    add("default pool connections opened", stats.get("connections_num"))


def case_prepare(conninfo, sfx):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE pp_{sfx} (id int PRIMARY KEY, v int)")
        conn.execute(f"INSERT INTO pp_{sfx} VALUES (1, 10), (2, 20)")
        for i in range(3):
            query(conn, f"SELECT id, v FROM pp_{sfx} WHERE id = %s", [1 + i % 2], prepare=True)
        query(conn, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%pp_%'")
        conn.execute(f"ALTER TABLE pp_{sfx} ALTER COLUMN v TYPE text USING 'v' || v")
        for i in range(3):
            query(conn, f"SELECT id, v FROM pp_{sfx} WHERE id = %s", [1], prepare=True)
        # psycopg's automatic preparation after prepare_threshold executions.
        conn.prepare_threshold = 1
        for i in range(4):
            query(conn, "SELECT %s::int * 2", [i])
        query(conn, "SELECT 'usable'")


def case_pipeline(conninfo, sfx):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE pl_{sfx} (id int PRIMARY KEY)")
        with conn.pipeline():
            cur1 = conn.execute(f"INSERT INTO pl_{sfx} VALUES (%s) RETURNING id", [1])
            cur2 = conn.execute(f"INSERT INTO pl_{sfx} VALUES (%s) RETURNING id", [2])
            cur3 = conn.execute(f"SELECT count(*) FROM pl_{sfx}")
        add("pipeline results", [cur1.fetchone(), cur2.fetchone(), cur3.fetchone()])

        try:
            with conn.pipeline() as p:
                conn.execute(f"INSERT INTO pl_{sfx} VALUES (%s)", [3])
                conn.execute(f"INSERT INTO pl_{sfx} VALUES (%s)", [1])
                conn.execute(f"INSERT INTO pl_{sfx} VALUES (%s)", [4])
                p.sync()
            add("pipeline with a duplicate: no error")
        except psycopg.Error as exc:
            add("pipeline with a duplicate", describe(exc))
        query(conn, f"SELECT id FROM pl_{sfx} ORDER BY id")

        with conn.transaction():
            with conn.pipeline():
                cur = conn.cursor()
                cur.executemany(f"INSERT INTO pl_{sfx} VALUES (%s)", [(i,) for i in range(100, 150)])
        query(conn, f"SELECT count(*) FROM pl_{sfx}")


def case_copy(conninfo, sfx):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE cp_{sfx} (id int, name text, data bytea)")
        with conn.cursor() as cur:
            with cur.copy(f"COPY cp_{sfx} (id, name, data) FROM STDIN") as copy:
                for i in range(3000):
                    copy.write_row((i, f"name {i}", bytes([i % 256])))
            add("copy in", cur.statusmessage if cur.statusmessage else cur.rowcount)
            with cur.copy(f"COPY (SELECT id, name FROM cp_{sfx} ORDER BY id) TO STDOUT") as copy:
                rows = list(copy.rows())
            add("copy out rows", len(rows))
            add("copy out first", rows[:2])
            with cur.copy(f"COPY cp_{sfx} (id, name) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text"])
                for i in range(5):
                    copy.write_row((10000 + i, "binary"))
            out = bytearray()
            with cur.copy(f"COPY (SELECT id FROM cp_{sfx} WHERE id >= 10000 ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                for block in copy:
                    out += block
            add("binary copy out bytes", len(out))
            try:
                with cur.copy(f"COPY cp_{sfx} (id) FROM STDIN") as copy:
                    copy.write("1\nnot-a-number\n")
                add("bad copy: no error")
            except psycopg.Error as exc:
                add("bad copy", describe(exc))
            query(conn, f"SELECT count(*), sum(id) FROM cp_{sfx}")


def case_cancel(conninfo, sfx):
    marker = f"sleep_{sfx}"
    with psycopg.connect(conninfo, autocommit=True) as conn, psycopg.connect(conninfo, autocommit=True) as watcher:
        def cancel_when_running():
            deadline = time.time() + 15
            while time.time() < deadline:
                n = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                    [f"%{marker}%"]).fetchone()[0]
                if n:
                    conn.cancel()
                    return
                time.sleep(0.02)

        thread = threading.Thread(target=cancel_when_running)
        thread.start()
        started = time.time()
        try:
            conn.execute(f"SELECT pg_sleep(10) /* {marker} */")
            add("pg_sleep(10) was not cancelled")
        except psycopg.Error as exc:
            add("pg_sleep(10)", describe(exc))
            check(isinstance(exc, errors.QueryCanceled), "QueryCanceled (57014)")
        elapsed = time.time() - started
        thread.join()
        check(elapsed < 5, f"cancelled within 5 s (took {elapsed:.1f} s)")
        query(conn, "SELECT 'usable after the cancel'")
        check(conn.info.backend_pid == conn.execute("SELECT pg_backend_pid()").fetchone()[0],
              "conn.info.backend_pid (BackendKeyData) is the server's pg_backend_pid()")


def case_notify(conninfo, sfx):
    channel = f"chan_{sfx}"
    with psycopg.connect(conninfo, autocommit=True) as listener, psycopg.connect(conninfo, autocommit=True) as notifier:
        seen = []
        listener.add_notify_handler(lambda n: seen.append(n))
        listener.execute(f"LISTEN {channel}")
        notifier.execute(f"NOTIFY {channel}, 'handled'")
        time.sleep(0.2)
        listener.execute("SELECT 1")
        add("handler got", [(n.channel, n.payload) for n in seen])

        def later():
            time.sleep(0.3)
            notifier.execute(f"NOTIFY {channel}, 'from the generator'")

        threading.Thread(target=later).start()
        gen = listener.notifies()
        for n in gen:
            add("generator got", (n.channel, n.payload))
            check(n.pid == notifier.info.backend_pid, "the notification's sender pid is the notifier's backend_pid")
            gen.close()
            break


CASES = {
    "pool": case_pool,
    "prepare": case_prepare,
    "pipeline": case_pipeline,
    "copy": case_copy,
    "cancel": case_cancel,
    "notify": case_notify,
}


def main():
    name, conninfo, sfx = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        CASES[name](conninfo, sfx)
    except Exception as exc:  # the transcript shows it; the test compares both ways
        add("UNHANDLED " + (describe(exc) if isinstance(exc, psycopg.Error) else f"{type(exc).__name__}: {exc}"))
    print(json.dumps({"case": name, "lines": [line.replace(sfx, "{sfx}") for line in lines]}, default=str))


if __name__ == "__main__":
    main()
