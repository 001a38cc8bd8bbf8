"""The one place txregistry reads private attributes of Twisted's HTTP
server, for what it offers no public way to know:

- the request line (method, URI, version) of the request whose headers an
  C{HTTPChannel} has just received, before its body is read and before
  C{Request.requestReceived} sets C{method}, C{uri} and C{clientproto}
  (C{channel._command}, C{_path}, C{_version});
- the date a C{Site} stamps on access lines, remade once a second while it
  runs (C{site._logDateTime});
- how many bytes a TCP transport holds, written but not yet handed to the
  kernel (C{transport.dataBuffer}, C{offset}, C{_tempDataLen}): a body sent
  with C{os.sendfile} must not overtake them (L{txregistry.web.sendfile}).

Each reader answers C{None} if this Twisted keeps the value elsewhere (the
request is then routed once its body is in, as if no chooser were set;
blobs are sent through the transport rather than with C{sendfile});
C{tests/unit/test_twisted_private.py} fails on a Twisted that does."""


class TwistedPrivate:
    """Readers of Twisted's private state (see the module's docstring)."""

    @staticmethod
    def requestLine(channel):
        """C{(method, uri)} (bytes) of the request whose headers C{channel}
        has just received, or C{(None, None)}."""
        command = getattr(channel, "_command", None)
        path = getattr(channel, "_path", None)
        if not isinstance(command, bytes) or not isinstance(path, bytes):
            return None, None
        return command, path

    @staticmethod
    def version(channel):
        """The HTTP version (bytes, e.g. C{b"HTTP/1.1"}) of that request, or
        C{None}."""
        version = getattr(channel, "_version", None)
        return version if isinstance(version, bytes) else None

    @staticmethod
    def logDate(site):
        """The access-log date C{site} keeps while it runs (a str), or
        C{None} (not started)."""
        value = getattr(site, "_logDateTime", None)
        return value if isinstance(value, str) and value else None

    @staticmethod
    def pendingWrites(transport):
        """How many bytes written to C{transport} (a
        L{twisted.internet.abstract.FileDescriptor}, as TCP transports are)
        it has not yet handed to the kernel, or C{None}."""
        buffered = getattr(transport, "dataBuffer", None)
        offset = getattr(transport, "offset", None)
        later = getattr(transport, "_tempDataLen", None)
        if not isinstance(buffered, bytes) or not isinstance(offset, int) or not isinstance(later, int):
            return None
        return len(buffered) - offset + later
