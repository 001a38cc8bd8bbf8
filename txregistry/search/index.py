"""A SQLAlchemy index of repositories: name, description, last push.

Every database call runs in the index's own thread pool (one thread for
SQLite, a few for a server database), never on the reactor thread."""

import re

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

RANK_EXACT, RANK_PREFIX, RANK_COMPONENT, RANK_SUBSTRING, RANK_DESCRIPTION = range(5)


class IndexUnavailable(Exception):
    """The database cannot be reached or used right now."""


def _escapeLike(term):
    return re.sub(r"([\\%_])", r"\\\1", term)


class SearchIndex:
    log = Logger()

    def __init__(self, url, reactor, threadpool):
        import sqlalchemy as sa

        self._sa = sa
        self.url = url
        self._reactor = reactor
        self._pool = threadpool
        kwargs = {"future": True} if sa.__version__.startswith("1.") else {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        self.metadata = sa.MetaData()
        self.repositories = sa.Table(
            "txregistry_repositories",
            self.metadata,
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("description", sa.Text, nullable=False, default=""),
            sa.Column("pushed_at", sa.Float, nullable=False, default=0.0),
        )
        self._schemaReady = False

    def _run(self, f, *args):
        def call():
            try:
                if not self._schemaReady:
                    self.metadata.create_all(self.engine)
                    self._schemaReady = True
                return f(*args)
            except self._sa.exc.SQLAlchemyError as e:
                raise IndexUnavailable(str(e).splitlines()[0])

        return deferToThreadPool(self._reactor, self._pool, call)

    # --- writes ---

    def upsert(self, name, description, pushedAt):
        return self._run(self._upsert, [(name, description or "", pushedAt)])

    def upsertMany(self, rows):
        return self._run(self._upsert, rows)

    def _upsert(self, rows):
        t = self.repositories
        with self.engine.begin() as conn:
            for name, description, pushedAt in rows:
                updated = conn.execute(
                    t.update().where(t.c.name == name).values(description=description, pushed_at=pushedAt)
                ).rowcount
                if not updated:
                    conn.execute(t.insert().values(name=name, description=description, pushed_at=pushedAt))

    def ensure(self, name):
        """Add C{name} with no description unless it is there."""
        t = self.repositories

        def ensure():
            with self.engine.begin() as conn:
                found = conn.execute(self._sa.select(t.c.name).where(t.c.name == name)).first()
                if found is None:
                    conn.execute(t.insert().values(name=name, description="", pushed_at=0.0))

        return self._run(ensure)

    def remove(self, name):
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

        def catalog():
            q = sa.select(t.c.name).order_by(t.c.name)
            if last:
                q = q.where(t.c.name > last)
            if limit is not None:
                q = q.limit(limit)
            with self.engine.connect() as conn:
                return [row[0] for row in conn.execute(q)]

        return self._run(catalog)

    def search(self, term, limit, offset):
        """C{(total, [(name, description)])}: repositories whose name (whole,
        prefix, a path component, or a substring) or description matches
        C{term}, case-insensitively, best matches first, ties by the most
        recent push."""
        sa, t = self._sa, self.repositories
        term = term.lower()
        like = _escapeLike(term)
        name = sa.func.lower(t.c.name)
        description = sa.func.lower(t.c.description)
        slashed = sa.literal("/") + name + sa.literal("/")
        rank = sa.case(
            (name == term, RANK_EXACT),
            (name.like(like + "%", escape="\\"), RANK_PREFIX),
            (slashed.like("%/" + like + "/%", escape="\\"), RANK_COMPONENT),
            (name.like("%" + like + "%", escape="\\"), RANK_SUBSTRING),
            else_=RANK_DESCRIPTION,
        )
        matches = sa.or_(name.like("%" + like + "%", escape="\\"), description.like("%" + like + "%", escape="\\"))

        def search():
            with self.engine.connect() as conn:
                total = conn.execute(sa.select(sa.func.count()).select_from(t).where(matches)).scalar()
                rows = conn.execute(
                    sa.select(t.c.name, t.c.description)
                    .where(matches)
                    .order_by(rank, t.c.pushed_at.desc(), t.c.name)
                    .limit(limit)
                    .offset(offset)
                ).all()
            return total, [(r[0], r[1]) for r in rows]

        return self._run(search)
