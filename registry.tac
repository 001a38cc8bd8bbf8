# twistd -ny registry.tac
# Settings come from the environment (REGISTRY_PORT, STORAGE_PATH,
# SETTINGS_FLAVOR, DOCKER_REGISTRY_CONFIG, LOGLEVEL, LOG_FORMAT) and the
# config file; the log goes where twistd's options (-n, --logfile) say.
from twisted.application import service

from txregistry.logs import serverOptionsFromArgv
from txregistry.tap import Options, makeService

application = service.Application("txregistry")
_options = Options()
_options.parseOptions([])
makeService(_options, serverOptions=serverOptionsFromArgv()).setServiceParent(application)
