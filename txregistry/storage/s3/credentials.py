"""AWS credentials: static keys, or botocore's credential chain.

Resolving the chain may call the network (instance metadata, SSO...) and
freezing expiring credentials may refresh them: both block, so neither runs
on the reactor thread.  Resolve before the reactor runs (the daemon's
start-up, so that missing credentials stop it with one line), or in a
thread pool (L{resolveInThread}, for code that runs under the reactor)."""

from twisted.internet.threads import deferToThreadPool

from txregistry.storage.interface import StorageError


class Credentials:
    """Frozen credentials (what signing reads: C{frozen}), refreshed in a
    thread when they can expire."""

    def __init__(self, credentials):
        self._source = credentials
        self.frozen = credentials.get_frozen_credentials()

    def refreshable(self):
        return hasattr(self._source, "refresh_needed")

    def refresh(self):
        self.frozen = self._source.get_frozen_credentials()

    def refreshIn(self, reactor, threadpool):
        """Refresh in C{threadpool}; a Deferred."""
        from twisted.internet.defer import succeed

        if not self.refreshable():
            return succeed(None)
        return deferToThreadPool(reactor, threadpool, self.refresh)


def resolveCredentials(accessKey=None, secretKey=None):
    """Static keys when given, else botocore's credential chain (environment,
    shared files, instance metadata...).  Blocks: call it before the reactor
    starts or in a thread."""
    import botocore.session
    from botocore.credentials import Credentials as Static

    if accessKey and secretKey:
        return Static(accessKey, secretKey)
    found = botocore.session.get_session().get_credentials()
    if found is None:
        raise StorageError("no AWS credentials: set s3_access_key/s3_secret_key (AWS_KEY/AWS_SECRET) "
                           "or configure the AWS credential chain")
    return found


def resolve(accessKey=None, secretKey=None):
    """L{Credentials}, resolved and frozen (blocks; see L{resolveCredentials})."""
    return Credentials(resolveCredentials(accessKey, secretKey))


def resolveInThread(reactor, threadpool, accessKey=None, secretKey=None):
    """L{resolve} in C{threadpool}: a Deferred of L{Credentials}."""
    return deferToThreadPool(reactor, threadpool, resolve, accessKey, secretKey)


def asCredentials(credentials):
    """L{Credentials} from C{credentials}: those, or botocore's (frozen here)."""
    return credentials if isinstance(credentials, Credentials) else Credentials(credentials)
