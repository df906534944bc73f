"""The layout of edge_agent/: rooms by role whose imports point one way, no import cycle
(imports inside functions count), few modules at the top, none too long.

    capture -> vision -> counting -> store      the trap's runtime, in the order a frame
                                                 flows; a room may use the rooms before it
    service: wires capture, vision, counting and store (never office)
    office:  reads the store (never capture, vision, counting or service)
    cli, demo: on top of everything

The top-level modules (config, manifest, labels, text, files, backoff) are for every room
and import no room.
"""

from __future__ import annotations

from pathlib import Path

import edge_agent
from tests.helpers.imports import find_cycle, import_graph, package_modules

ROOT = Path(edge_agent.__file__).parent
TOP = "top"
# What each room may import besides itself and the top-level modules.
ALLOWED = {
    TOP: set(),
    "capture": set(),
    "vision": {"capture"},
    "counting": {"capture", "vision"},
    "store": {"counting"},  # the type of a closed event, to write it
    "service": {"capture", "vision", "counting", "store"},
    "office": {"store"},
    "cli": {"capture", "vision", "counting", "store", "service", "office"},
    "demo": {"capture", "vision", "counting", "store", "service", "office", "cli"},
}
MAX_TOP_MODULES = 8
MAX_LINES = 700


def room_of(module: str) -> str:
    """``edge_agent.vision.motion`` -> ``vision``; a top-level module -> ``top``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (ROOT / parts[-1]).is_dir() else TOP


def test_every_module_is_in_a_known_room():
    rooms = {room_of(name) for name in package_modules(ROOT, "edge_agent") if name != "edge_agent"}
    assert rooms == set(ALLOWED)


def test_rooms_import_only_the_rooms_before_them():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph(ROOT, "edge_agent").items()
        for target in targets
        if room_of(target) not in {room_of(module), TOP, *ALLOWED[room_of(module)]}
        and target != "edge_agent"
    )
    assert wrong == []


def test_the_layering_check_sees_function_level_imports():
    graph = import_graph(ROOT, "edge_agent")
    assert "edge_agent.counting.pipeline" in graph["edge_agent.service.wiring"]
    # cli imports what a command needs inside the command, so that --help stays quick.
    assert "edge_agent.office.review" in graph["edge_agent.cli.office"]


def test_no_import_cycle_inside_edge_agent():
    cycle = find_cycle(import_graph(ROOT, "edge_agent"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_few_modules_at_the_top_and_none_too_long():
    top = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    lengths = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in package_modules(ROOT, "edge_agent").items()
    }
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
