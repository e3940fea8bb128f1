"""The one exception type users see: the CLI prints its message as a single line and exits 1."""


class ActstoreError(Exception):
    """A problem with the user's input or the store, stated in one line a user can act on."""


class StoreFault(ActstoreError):
    """Stored data that is missing, damaged or misplaced (not the data written at its key): always an error, never
    read back as data."""

    def __init__(self, message: str, problem: str = "damaged") -> None:
        super().__init__(message)
        #: what ``actstore verify`` reports: missing | damaged | misplaced
        self.problem = problem


class StoreUnreachable(ActstoreError):
    """The storage service of a store stopped answering in the middle of a command, after the retries its options
    allow: what was marked done is whole, and the same command continues once it answers again."""
