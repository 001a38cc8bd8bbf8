"""Import a classic docker-registry (V1) store: ``txregistry import-v1``.

- L{source}: reading the V1 layout through a storage driver (a directory,
  or the classic registry's S3 bucket), and its search database;
- L{layers}: what a V1 layer is, and its digests in one streaming pass;
- L{convert}: image config and manifest from V1 JSON (pure functions);
- L{importer}: the import itself, on top of L{txregistry.registry};
- L{command}: the command's options, progress and summary."""
