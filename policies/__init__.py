"""The prepull policy pack (``pulumi preview --policy-pack policies``).

The policies live in :mod:`policies.prepull_policies` (``POLICIES``) so they
can be imported and tested; ``__main__.py`` only builds the ``PolicyPack``.
"""
