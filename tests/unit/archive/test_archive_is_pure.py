"""The archive package stays pure: standard library, ISA-L's gzip and strongroom's own errors only.

DESIGN.md keeps IO at the edges; the tarball format must not reach for the
network, a Kubernetes client or an object store. import-linter guards the
package boundaries; this test also names what the package may import.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import strongroom.archive

ALLOWED_FIRST_PARTY = ("strongroom.archive", "strongroom.errors")
# Compression and JSON encoding only (bytes in, bytes out).
ALLOWED_THIRD_PARTY = ("isal", "orjson")


def _imports(source: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_archive_imports_only_the_standard_library_compression_and_its_own_errors() -> None:
    package_dir = Path(strongroom.archive.__file__).parent
    foreign: dict[str, set[str]] = {}
    for source in sorted(package_dir.glob("*.py")):
        for module in _imports(source):
            top = module.split(".")[0]
            if top == "__future__" or top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            if any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_FIRST_PARTY):
                continue
            foreign.setdefault(source.name, set()).add(module)

    assert foreign == {}
