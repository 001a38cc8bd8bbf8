"""twistd plugin: ``twistd txregistry --port 5000``.

(No __init__.py in this directory: it extends Twisted's own plugins package.)
"""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class _RegistryServiceMaker:
    tapname = "txregistry"
    description = "A container image registry (OCI Distribution Spec v1.1)."

    @property
    def options(self):
        from txregistry.tap import Options

        return Options

    def makeService(self, options):
        from txregistry.tap import makeService

        return makeService(options)


serviceMaker = _RegistryServiceMaker()
