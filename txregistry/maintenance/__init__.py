"""Keeping a registry's storage tidy: the collection on a schedule inside
the daemon (L{schedule}, configured by L{settings}), and what the admin
commands show while they work (L{progress}).  The collection itself, the
retention policies and the blob check are the registry model's
(L{txregistry.registry.gc}, L{txregistry.registry.retention},
L{txregistry.registry.check})."""
