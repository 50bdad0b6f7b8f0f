"""Reading and checking the configuration before any job runs.

:mod:`~clbench.config.files` reads each YAML file strictly, :mod:`~clbench.config.args` the ``--config``
values, :mod:`~clbench.config.composition` layers them (overlays, ``compose: replace``, selection of
papers, experiments and methods), :mod:`~clbench.config.schema` validates them against the schema and fills
in its defaults, and :mod:`~clbench.config.checks` and :mod:`~clbench.config.graph` refuse what the schema
cannot (combinations that would fail in a job or mean something else). The cross-reference checks that
:func:`clbench.workflow.check_config` runs and the paths of every output are in :mod:`clbench.workflow`; the
optional installs a configuration needs, in :mod:`clbench.extras`.
"""
