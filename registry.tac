# twistd -ny registry.tac
# Settings come from the environment (REGISTRY_PORT, STORAGE_PATH,
# SETTINGS_FLAVOR, DOCKER_REGISTRY_CONFIG, LOGLEVEL) and the config file.
from twisted.application import service

from txregistry.tap import Options, makeService

application = service.Application("txregistry")
_options = Options()
_options.parseOptions([])
makeService(_options).setServiceParent(application)
