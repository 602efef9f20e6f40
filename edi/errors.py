"""The one error hierarchy of edi. Bad *input* is never an exception: it becomes a finding.

These errors mean the processor itself cannot go on (bad configuration, unusable workspace, ...). The CLI turns
each into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class EdiError(Exception):
    """Root of every error edi raises on purpose."""


class ConfigError(EdiError):
    """The configuration file is missing, unreadable, or has an unknown key or a bad value."""


class DirectoryError(ConfigError):
    """The recipient directory named in the configuration cannot be read or is inconsistent."""


class WorkspaceError(EdiError):
    """The workspace is missing, not initialised, or not writable."""


class StoreError(WorkspaceError):
    """The tracking store is missing, empty, not a database, lacks its tables, or is another workspace's."""


class WorkspaceBusy(WorkspaceError):
    """Another processor holds the workspace's processor lock."""


class UnknownFlowError(EdiError):
    """No flow has the id an operator asked for."""


class CatalogueError(EdiError):
    """The schema catalogue is inconsistent or names a schema the installed packages do not ship."""


class InjectedFault(EdiError):
    """A fault injected on purpose (EDI_FAULTS) to test that a failure loses nothing."""


class BadQuery(EdiError):
    """A console or API request asks for something malformed: a bad date, an unknown status, an altered cursor."""


class ServeError(EdiError):
    """The console cannot listen where it was asked to (the port is taken, the address is not this machine's)."""
