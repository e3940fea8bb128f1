"""The house rule that CI's lint does not see: no import circles (lint-imports checks the layers)."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_itself_through_others():
    """Every import executed at run time (TYPE_CHECKING ones are only read by type checkers) runs one way."""
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("actstore", "cli", exclude_type_checking_imports=True)
    finally:
        sys.path.remove(str(ROOT))
    circles = {tuple(sorted({module, *chain}))
               for module in graph.modules for imported in graph.find_modules_directly_imported_by(module)
               if (chain := graph.find_shortest_chain(importer=imported, imported=module))}
    assert not circles, circles
