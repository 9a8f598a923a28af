"""Subcommands of the ``varseg`` command line (each: ``add_arguments`` and ``main``)."""
