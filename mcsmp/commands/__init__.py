"""Sub-commands of the ``mcsmp`` command line, one module per group."""
