"""A SQLAlchemy index of repositories: name, description, last push.

Every database call runs in the index's own thread pool (one thread for
SQLite, a few for a server database), never on the reactor thread.  A read
(search, catalog) is given up after C{readTimeout} seconds: a locked or hung
database answers L{IndexUnavailable} in bounded time, and a read given up
before its turn in the pool came is not run at all.

Matching is case-insensitive on lowercase copies of the name and the
description.  On SQLite an FTS5 trigram index (kept in step by triggers)
finds the candidate rows for terms of three characters or more, so a search
stays fast with 100,000 repositories; elsewhere, and for shorter terms, a
LIKE scan does.

Every text that enters the database passes through L{storable} first:
strings from JSON may hold lone surrogates (``"\\ud800"`` is valid JSON but
no UTF-8 encoder accepts the result) and NUL characters (which PostgreSQL
refuses in text), and either would make the whole statement fail, poisoning
every row written with it (a rebuild writes rows by the hundred)."""

import contextlib
import fcntl
import os
import re

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from txregistry import names

RANK_EXACT, RANK_PREFIX, RANK_COMPONENT, RANK_SUBSTRING, RANK_DESCRIPTION = range(5)
TABLE = "txregistry_repositories"
FTS_TABLE = "txregistry_repositories_fts"
SCHEMA_LOCK_KEY = 0x74787265  # PostgreSQL advisory lock held while tables are made ("txre")

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(name_lc, description_lc, "
    "tokenize='trigram', content='{t}', content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS {t}_ai AFTER INSERT ON {t} BEGIN "
    "INSERT INTO {fts}(rowid, name_lc, description_lc) VALUES (new.rowid, new.name_lc, new.description_lc); END",
    "CREATE TRIGGER IF NOT EXISTS {t}_ad AFTER DELETE ON {t} BEGIN "
    "INSERT INTO {fts}({fts}, rowid, name_lc, description_lc) "
    "VALUES ('delete', old.rowid, old.name_lc, old.description_lc); END",
    "CREATE TRIGGER IF NOT EXISTS {t}_au AFTER UPDATE ON {t} BEGIN "
    "INSERT INTO {fts}({fts}, rowid, name_lc, description_lc) "
    "VALUES ('delete', old.rowid, old.name_lc, old.description_lc); "
    "INSERT INTO {fts}(rowid, name_lc, description_lc) VALUES (new.rowid, new.name_lc, new.description_lc); END",
]


class IndexUnavailable(Exception):
    """The database cannot be reached or used right now."""


def storable(text):
    """C{text} as every database stores it: NUL and lone surrogates become
    U+FFFD (a surrogate pair that was left as two code points becomes the
    character it encodes)."""
    if text is None:
        return ""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _catalogBound(last):
    """C{last} of a catalog page as a bound the database can compare with:
    names have neither NUL nor surrogates, so cutting C{last} at a NUL, or
    replacing a surrogate by U+FFFD (above every character of a name, as a
    surrogate is), leaves the set of names after it unchanged."""
    return storable(last.split("\x00", 1)[0])


def _escapeLike(term):
    return re.sub(r"([\\%_])", r"\\\1", term)


@contextlib.contextmanager
def _schemaLock(database):
    """Held while the schema is checked and made: the processes sharing an
    SQLite file (a daemon's workers, an admin command) make it one after
    the other, each seeing what the one before made.  (In the index's
    thread pool: it may wait.)"""
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(database + ".schema-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _writeAheadLog(connection, record):
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


class SearchIndex:
    log = Logger()

    def __init__(self, url, reactor, threadpool, readTimeout=None):
        import sqlalchemy as sa

        self._sa = sa
        self.readTimeout = readTimeout
        self.url = url
        self._reactor = reactor
        self._pool = threadpool
        kwargs = {}
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        if self.sqlite:
            # Readers never wait for the writer, and several processes (the
            # daemon's workers, the admin commands) share the file safely.
            sa.event.listen(self.engine, "connect", _writeAheadLog)
        self.metadata = sa.MetaData()
        self.repositories = sa.Table(
            TABLE,
            self.metadata,
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("description", sa.Text, nullable=False, default=""),
            sa.Column("pushed_at", sa.Float, nullable=False, default=0.0),
            sa.Column("name_lc", sa.String(255), nullable=False, index=True),
            sa.Column("description_lc", sa.Text, nullable=False, default=""),
        )
        self._schemaReady = False
        self.fts = False

    def createTables(self, metadata):
        """Make the tables of C{metadata} that are missing, one process at a
        time: on SQLite under a lock file beside it, on PostgreSQL under an
        advisory lock (nodes starting together would otherwise make the same
        table at once, and all but one fail).  (In the index's pool.)"""
        with _schemaLock(self.engine.url.database if self.sqlite else None):
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(self._sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                metadata.create_all(conn)

    def _ensureSchema(self):
        self.createTables(self.metadata)
        if self.sqlite:
            try:
                with self.engine.begin() as conn:
                    for statement in _SQLITE_FTS:
                        conn.exec_driver_sql(statement.format(t=TABLE, fts=FTS_TABLE))
                self.fts = True
            except self._sa.exc.OperationalError as e:  # no FTS5 or no trigram tokenizer
                self.log.info("SQLite full-text index unavailable ({e}): searching by scan", e=e)
        self._schemaReady = True

    def _call(self, f, *args):
        """C{f(*args)} in a thread of the pool."""
        try:
            if not self._schemaReady:
                self._ensureSchema()
            return f(*args)
        except self._sa.exc.SQLAlchemyError as e:
            raise IndexUnavailable(str(e).splitlines()[0])

    def _run(self, f, *args):
        return deferToThreadPool(self._reactor, self._pool, self._call, f, *args)

    def run(self, f, *args):
        """C{f(*args)} in the index's thread pool (where C{f} may use
        L{engine}); a Deferred, failing with L{IndexUnavailable} on a
        database error."""
        return self._run(f, *args)

    def _read(self, f, *args):
        """L{_run} for a read, given up (L{IndexUnavailable}) after
        C{readTimeout} seconds; given up before it ran, it does not run."""
        if self.readTimeout is None:
            return self._run(f, *args)
        given = []

        def call():
            return None if given else self._call(f, *args)

        def cancel(_):
            given.append(True)

        d = Deferred(cancel)

        def onResult(success, result):
            self._reactor.callFromThread(d.callback if success else d.errback, result)

        self._pool.callInThreadWithCallback(onResult, call)
        d.addTimeout(self.readTimeout, self._reactor)

        def timedOut(failure):
            failure.trap(TimeoutError, CancelledError)
            raise IndexUnavailable("the search index did not answer within %g s" % (self.readTimeout,))

        return d.addErrback(timedOut)

    # --- writes ---

    def upsert(self, name, description, pushedAt):
        return self.upsertMany([(name, description or "", pushedAt)])

    def upsertMany(self, rows):
        """Write C{(name, description, pushedAt)} rows.  A row whose name is
        not a repository name (a stray directory in storage) is left out
        and logged: it could not be pulled, and its name may not even be
        text a database can store."""
        rows = list(rows)
        bad = [row[0] for row in rows if not names.isValidName(row[0])]
        if bad:
            for name in bad:
                self.log.warn("not indexed: {name!r} is not a repository name", name=name)
            rows = [row for row in rows if names.isValidName(row[0])]
        return self._run(self._upsert, rows)

    def _insert(self):
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            return None
        return insert(self.repositories)

    def _upsert(self, rows):
        if not rows:
            return
        t = self.repositories
        values = []
        for name, description, pushedAt in rows:
            description = storable(description)
            values.append(
                {
                    "name": name,
                    "description": description,
                    "pushed_at": pushedAt,
                    "name_lc": name.lower(),
                    "description_lc": description.lower(),
                }
            )
        insert = self._insert()
        with self.engine.begin() as conn:
            if insert is not None:
                stmt = insert.on_conflict_do_update(
                    index_elements=[t.c.name],
                    set_={
                        "description": insert.excluded.description,
                        "description_lc": insert.excluded.description_lc,
                        "pushed_at": insert.excluded.pushed_at,
                    },
                )
                conn.execute(stmt, values)
                return
            for v in values:
                if not conn.execute(t.update().where(t.c.name == v["name"]).values(**v)).rowcount:
                    conn.execute(t.insert().values(**v))

    def ensure(self, name):
        """Add C{name} with no description unless it is there."""
        t = self.repositories
        if not names.isValidName(name):
            self.log.warn("not indexed: {name!r} is not a repository name", name=name)
            return succeed(None)

        def ensure():
            with self.engine.begin() as conn:
                found = conn.execute(self._sa.select(t.c.name).where(t.c.name == name)).first()
                if found is None:
                    conn.execute(
                        t.insert().values(name=name, description="", pushed_at=0.0, name_lc=name.lower(),
                                          description_lc="")
                    )

        return self._run(ensure)

    def remove(self, name):
        name = storable(name)  # a name that is not storable is not stored either

        def remove():
            with self.engine.begin() as conn:
                conn.execute(self.repositories.delete().where(self.repositories.c.name == name))

        return self._run(remove)

    def clear(self):
        def clear():
            with self.engine.begin() as conn:
                conn.execute(self.repositories.delete())

        return self._run(clear)

    # --- reads ---

    def count(self):
        def count():
            with self.engine.connect() as conn:
                return conn.execute(self._sa.select(self._sa.func.count()).select_from(self.repositories)).scalar()

        return self._run(count)

    def catalog(self, last=None, limit=None):
        """Names after C{last}, sorted, at most C{limit}."""
        sa, t = self._sa, self.repositories
        last = _catalogBound(last) if last else None

        # Byte order, as the storage walk sorts, whatever the database's
        # collation (PostgreSQL's is often a locale's).
        name = t.c.name if self.sqlite else t.c.name.collate("C")

        def catalog():
            q = sa.select(t.c.name).order_by(name)
            if last:
                q = q.where(name > last)
            if limit is not None:
                q = q.limit(limit)
            with self.engine.connect() as conn:
                return [row[0] for row in conn.execute(q)]

        return self._read(catalog)

    def rows(self, names):
        """{name: (description, pushedAt)} of those of C{names} (at most a
        page of them) that the index holds."""
        sa, t = self._sa, self.repositories
        names = [storable(name) for name in names]

        def rows():
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(t.c.name, t.c.description, t.c.pushed_at).where(t.c.name.in_(names)))
                return {row[0]: (row[1], row[2]) for row in found}

        return self._read(rows)

    def search(self, term, limit, offset):
        """C{(total, [(name, description)])}: repositories whose name (whole,
        prefix, a path component, or a substring) or description contains
        C{term}, case-insensitively; best matches first, ties by the most
        recent push."""
        sa, t = self._sa, self.repositories
        term = storable(term).lower()  # as the descriptions were stored
        like = _escapeLike(term)
        name = t.c.name_lc
        contains = "%" + like + "%"
        slashed = sa.literal("/") + name + sa.literal("/")
        rank = sa.case(
            (name == term, RANK_EXACT),
            (name.like(like + "%", escape="\\"), RANK_PREFIX),
            (slashed.like("%/" + like + "/%", escape="\\"), RANK_COMPONENT),
            (name.like(contains, escape="\\"), RANK_SUBSTRING),
            else_=RANK_DESCRIPTION,
        )
        if self.fts and len(term) >= 3:
            phrase = '"%s"' % term.replace('"', '""')
            candidates = sa.text("SELECT rowid FROM %s WHERE %s MATCH :phrase" % (FTS_TABLE, FTS_TABLE))
            matches = sa.literal_column("rowid").in_(candidates.bindparams(phrase=phrase))
        else:
            matches = sa.or_(name.like(contains, escape="\\"), t.c.description_lc.like(contains, escape="\\"))
        total = sa.func.count().over().label("total")

        def search():
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(t.c.name, t.c.description, total)
                    .where(matches)
                    .order_by(rank, t.c.pushed_at.desc(), t.c.name)
                    .limit(limit)
                    .offset(offset)
                ).all()
                if rows:
                    count = rows[0][2]
                else:
                    count = conn.execute(sa.select(sa.func.count()).select_from(t).where(matches)).scalar()
            return count, [(r[0], r[1]) for r in rows]

        return self._read(search)
