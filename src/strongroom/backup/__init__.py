"""Back up a cluster's resources: resolve the spec, collect the items, write and store the backup.

``request`` turns flags or a Backup spec into what to collect, ``collector``
walks the cluster with one paginated LIST per type and streams the items
into the tarball, and ``runner`` stores the result, metadata last. The same
engine serves the command line (local mode) and the in-cluster server.
"""
