"""The engine's contracts: one host loop, no import cycle, nothing done at import, the config's
flags generated from its fields, a parsed strategy."""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import os
import platform
import re
import subprocess
import sys

import pytest

import helpers
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.engine.strategy import Strategy

PACKAGE = os.path.join(helpers.REPO, "vmaptrain")
ARCHITECTURE = os.path.join(helpers.REPO, "docs", "architecture.md")


def _modules() -> dict[str, str]:
    """Every module of the package: dotted name → path."""
    found = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path, helpers.REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def _imports(path: str, module: str, modules: dict) -> list[tuple[str, list[str]]]:
    """(imported package module, names imported from it) for every import in `path`, function-local
    ones included; `from pkg import sub` counts as an import of the submodule."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if not base.startswith("vmaptrain"):
                continue
            names = []
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.append((f"{base}.{alias.name}", []))
                else:
                    names.append(alias.name)
            if names and base in modules:
                found.append((base, names))
    return found


def _graph():
    modules = _modules()
    return modules, {m: _imports(p, m, modules) for m, p in modules.items()}


def test_the_package_has_no_import_cycle():
    modules, imports = _graph()
    edges = {m: sorted({target for target, _ in imports[m] if target != m}) for m in modules}
    # A package's __init__ may re-export its own submodules (the package is their namespace).
    for m in edges:
        edges[m] = [t for t in edges[m] if not (t.startswith(m + ".") and modules[m].endswith("__init__.py"))]
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in edges[node]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    _, imports = _graph()
    private = [
        f"{m} imports {target}.{name}"
        for m, targets in imports.items()
        for target, names in targets
        for name in names
        if name.startswith("_") and target != m
    ]
    assert not private, private


def _layers() -> list[tuple[str, list[str]]]:
    """The layer table of docs/architecture.md: (layer name, module patterns), lowest first."""
    text = open(ARCHITECTURE, encoding="utf-8").read()
    table = text[text.index("| layer |") :].split("\n\n")[0].splitlines()[2:]
    layers = []
    for row in table:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        layers.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return layers


def _layer_of(module: str, layers) -> int:
    best, length = None, -1
    for level, (_, patterns) in enumerate(layers):
        for pattern in patterns:
            base = pattern.removesuffix(".*").removesuffix("/")
            inside = module.startswith(base + ".") and base != "vmaptrain"  # the root package: itself only
            if (module == base or inside) and len(base) > length:
                best, length = level, len(base)
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best


def test_imports_only_go_down_the_layers_of_docs_architecture():
    modules, imports = _graph()
    layers = _layers()
    assert len(layers) >= 5
    upward = []
    for module in modules:
        level = _layer_of(module, layers)
        for target, _ in imports[module]:
            if target != module and _layer_of(target, layers) > level:
                upward.append(
                    f"{module} ({layers[level][0]}) imports {target} ({layers[_layer_of(target, layers)][0]})"
                )
    assert not upward, upward


def test_there_is_one_host_training_loop():
    loops = []
    for module, path in _modules().items():
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if re.search(r"def .*train.*loop|for step in", line):
                loops.append(f"{module}:{number}")
    assert len(loops) == 1 and loops[0].startswith("vmaptrain.engine.trainer:"), loops


_MALLOC_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None)

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]

libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
for name in sys.argv[1:]:
    __import__(name)
if "apply" in sys.argv[1:]:
    pass
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)  # glibc's default: mmapped (above the mmap threshold)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc ≥ 2.33"
)
def test_importing_the_package_leaves_malloc_untouched():
    def mmapped_blocks(*imports):
        code = _MALLOC_PROBE.replace('"apply" in sys.argv[1:]', "False")
        if "apply" in imports:
            code = code.replace(
                "if False:\n    pass", "from vmaptrain.engine import hostmem\nhostmem.keep_freed_memory()"
            )
            imports = tuple(i for i in imports if i != "apply")
        out = subprocess.run(
            [sys.executable, "-c", code, *imports],
            capture_output=True,
            text=True,
            env=helpers.env(),
            cwd=helpers.REPO,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    # After these imports a 64 MiB block is still mmapped: the allocator has its defaults.
    assert mmapped_blocks("vmaptrain.config", "vmaptrain.study", "vmaptrain.engine.programs") == 1
    # The control: with the policy applied (as CPU programs do), it comes from the heap.
    assert mmapped_blocks("vmaptrain.config", "apply") == 0


def test_flags_are_generated_from_the_config_fields():
    from absl import flags

    from vmaptrain import cli

    values = flags.FlagValues()
    cli.define_study_flags(values)
    for field in dataclasses.fields(StudyConfig):
        assert field.metadata.get("help"), f"StudyConfig.{field.name} has no help text"
        flag = values[field.name]
        assert flag.help == field.metadata["help"]
        default = field.default
        if field.metadata["flag"]:
            text = ",".join(str(v) for v in default) if isinstance(default, tuple) else str(default)
            assert flag.default == text
        else:
            assert flag.default == default, field.name
    # Parsed back, the defaults are the config's defaults.
    values(["train_seeds"])
    assert cli.study_config(values) == StudyConfig()


def test_the_strategy_is_parsed_once_at_validation():
    config = StudyConfig(strategy="chunk:4+direct+eigen")
    assert config.parsed_strategy == Strategy("chunk", 4, ("direct", "eigen"))
    assert str(config.parsed_strategy) == "chunk:4+direct+eigen"
    assert StudyConfig(strategy="auto").parsed_strategy.is_auto
    with pytest.raises(StudyError, match="unknown strategy 'fastest'"):
        StudyConfig(strategy="fastest")
    with pytest.raises(StudyError, match="eval_every_epochs"):
        StudyConfig(eval_every_epochs=-1)
