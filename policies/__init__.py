"""The prepull policy pack (``pulumi preview --policy-pack policies``).

The policies live in :mod:`policies.prepull_policies` (``POLICIES``) so they
can be imported and tested; ``__main__.py`` only builds the ``PolicyPack``.
Their settings are read by :mod:`policies.config`, workload resources by
:mod:`policies.reading`, and ``allowedImages`` patterns by
:mod:`policies.patterns`. Imports run one way: ``patterns`` is used by
``config`` and ``reading``, and all three by ``prepull_policies``.
"""
