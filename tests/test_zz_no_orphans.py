"""No anvil started by this test process is left alive by the tests that ran before this one.

Under pytest-xdist this runs on one worker, part-way through its share of the tests; the
session-end check in ``tests/conftest.py`` asks the same of every worker once all its tests and
fixtures are done.
"""

from __future__ import annotations

import pytest

from tests.orphans import live_anvil_children


@pytest.mark.chain
def test_no_anvil_left_from_this_session() -> None:
    import sims.anvil as mod

    # Nodes still tracked as live are fixtures' (the session node, a module's upstream), torn
    # down later; any other live anvil whose parent is us is an orphan in the making.
    tracked = {n.pid for n in mod._live if n.pid is not None}
    leaked = live_anvil_children(exclude=tracked)
    assert leaked == [], f"anvil processes left running: {leaked}"
