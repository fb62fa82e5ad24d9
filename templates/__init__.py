"""Repository scaffolds of ``maestro new workflow|service NAME`` (maestro/scaffold.py).

Package data, not code: ``common/`` holds files every repository gets, ``workflow/``
and ``service/`` those of each kind (a kind's file replaces a common one of the same
path). Every ``*.tmpl`` file is one file of the new repository; see docs/templates.md.
"""
