"""Worker processes: the master binds the listening socket(s) and runs N
workers, each a whole registry (txregistry.service) on the inherited
descriptors (L{txregistry.workers.master}, L{txregistry.workers.worker}).

L{choose} decides N; the rest of the daemon does not know whether it runs
alone or as one of several."""

from txregistry.workers.settings import MAX_AUTO_WORKERS, WorkersConfigError, choose, parseWorkers

__all__ = ["MAX_AUTO_WORKERS", "WorkersConfigError", "choose", "parseWorkers"]
