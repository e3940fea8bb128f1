"""The one exception type users see: the CLI prints its message as a single line and exits 1."""


class ActstoreError(Exception):
    """A problem with the user's input or the store, stated in one line a user can act on."""


class StoreFault(ActstoreError):
    """Stored data that is missing or damaged: always an error, never read back as data."""
