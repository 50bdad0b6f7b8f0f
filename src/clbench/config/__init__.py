"""Reading and checking the configuration before any job runs.

:mod:`~clbench.config.files` reads each YAML file strictly, :mod:`~clbench.config.args` the ``--config``
values, :mod:`~clbench.config.composition` layers them (overlays, ``compose: replace``, selection of
papers, experiments and methods), :mod:`~clbench.config.schema` validates them against the schema, fills in
its defaults and resolves a method's settings in an experiment; :mod:`~clbench.config.settings`
(:func:`~clbench.config.settings.check_config`), :mod:`~clbench.config.checks` and
:mod:`~clbench.config.graph` refuse what the schema cannot: cross-references, values, and combinations that
would fail in a job or mean something else. The jobs a configuration plans and their paths are
:mod:`clbench.workflow`; the optional installs it needs, :mod:`clbench.extras`.
"""
