"""A real SMTP server for tests: Twisted's own (twisted.mail) in a
subprocess on 127.0.0.1, keeping each message it accepts as a file.

    python -m tests.support.smtpserver PORT DIRECTORY [USER PASSWORD [CERT KEY]]

With USER and PASSWORD it offers AUTH (PLAIN, LOGIN) and refuses mail from
unauthenticated senders; with CERT and KEY (PEM files) it offers STARTTLS
too.  Each message is written (whole, then renamed) to DIRECTORY as
C{NNNN.eml}: the envelope sender and recipient, a blank line, the data.
"""

import os
import socket
import subprocess
import sys
import time

from tests.support.procs import REPO, terminate


class SMTPServer:
    """The server process, listening on C{port}; L{messages} reads what it
    has received."""

    def __init__(self, port, directory, logPath, user=None, password=None, tls=None):
        self.port = port
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        args = [sys.executable, "-m", "tests.support.smtpserver", str(port), directory]
        if user:
            args += [user, password]
            if tls:
                args += [tls["cert"], tls["key"]]
        self._log = open(logPath, "ab")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("SMTP server exited: %s" % (open(logPath).read()[-2000:],))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SMTP server on port %d did not start" % (port,))
                time.sleep(0.02)  # polling for the port

    def messages(self):
        """The messages received so far, oldest first: (envelope, bytes)."""
        out = []
        for name in sorted(n for n in os.listdir(self.directory) if n.endswith(".eml")):
            with open(os.path.join(self.directory, name), "rb") as f:
                head, _, data = f.read().partition(b"\n\n")
            out.append((head.decode("utf-8"), data))
        return out

    def stop(self):
        terminate(self.proc)
        self._log.close()


def _serve(port, directory, user=None, password=None, cert=None, key=None):
    from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
    from twisted.cred.portal import IRealm, Portal
    from twisted.internet import defer, reactor, ssl
    from twisted.mail import smtp
    from twisted.mail.imap4 import LOGINCredentials, PLAINCredentials
    from zope.interface import implementer

    counter = [0]

    @implementer(smtp.IMessage)
    class Message:
        def __init__(self, envelope):
            self.lines = [envelope.encode("utf-8"), b""]

        def lineReceived(self, line):
            self.lines.append(line)

        def eomReceived(self):
            counter[0] += 1
            path = os.path.join(directory, "%04d.eml" % (counter[0],))
            with open(path + ".tmp", "wb") as f:
                f.write(b"\n".join(self.lines) + b"\n")
            os.rename(path + ".tmp", path)
            return defer.succeed(None)

        def connectionLost(self):
            pass

    @implementer(smtp.IMessageDelivery)
    class Delivery:
        def __init__(self, who=None):
            self.who = who

        def receivedHeader(self, helo, origin, recipients):
            return None

        def validateFrom(self, helo, origin):
            self.origin = origin
            return origin

        def validateTo(self, user):
            envelope = "from: %s\nto: %s\nhelo: %s\nlogin: %s" % (
                self.origin, user.dest, user.helo[0].decode("ascii", "replace"), self.who or "")
            return lambda: Message(envelope)

    @implementer(IRealm)
    class Realm:
        def requestAvatar(self, avatarId, mind, *interfaces):
            return smtp.IMessageDelivery, Delivery(avatarId.decode("utf-8")), lambda: None

    class Factory(smtp.SMTPFactory):
        protocol = smtp.ESMTP

        def buildProtocol(self, addr):
            p = smtp.SMTPFactory.buildProtocol(self, addr)
            if user:
                p.challengers = {b"LOGIN": LOGINCredentials, b"PLAIN": PLAINCredentials}
                if cert:
                    with open(cert, "rb") as c, open(key, "rb") as k:
                        p.ctx = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
            else:
                p.delivery = Delivery()
            return p

    factory = Factory()
    factory.domain = b"smtp.test"
    if user:
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser(user.encode("utf-8"), password.encode("utf-8"))
        factory.portal = Portal(Realm(), [checker])
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), *sys.argv[2:])
