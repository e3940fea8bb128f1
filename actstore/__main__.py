"""``python -m actstore``: the same command line as the ``actstore`` console script, with its signal handlers."""

from actstore_entry import main

main()
