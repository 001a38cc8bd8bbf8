"""The request details events carry (see txregistry.events): bound by the
web layer for each request, read by the model's announcements."""

from txregistry import events

MAX_FIELD = 512  # characters kept of a client-chosen header


def _text(value):
    if value is None:
        return ""
    return value[:MAX_FIELD].decode("latin-1")


def bindRequest(request, baseURL):
    """Bind C{request}'s details (its identity set or not yet) as the
    request of the events announced while it is handled."""
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    identity = getattr(request, "txrIdentity", None)
    events.bind(events.RequestInfo(
        id=events.newRequestID(),
        addr="%s:%s" % (host, address.port) if host and getattr(address, "port", None) else (host or ""),
        host=_text(request.getHeader(b"host")),
        method=request.method.decode("ascii", "replace"),
        useragent=_text(request.getHeader(b"user-agent")),
        user=(getattr(identity, "name", None) or ""),
        baseURL=baseURL.decode("ascii", "replace") if isinstance(baseURL, bytes) else baseURL,
    ))
