"""actorflow.testing schedules: the virtual asyncio loop, settle(), Deadlock, seeded schedules."""

from __future__ import annotations

import math
import time

import anyio

from actorflow.testing import virtual_time_backend


def test_the_virtual_loop_never_jumps_to_infinity() -> None:
    """A task sleeping forever is no next event: a thread's wait must not jump time to inf."""

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever)
            await anyio.to_thread.run_sync(time.sleep, 0.01)
            now = anyio.current_time()
            tg.cancel_scope.cancel()
        return now

    name, options = virtual_time_backend("asyncio")
    assert math.isfinite(anyio.run(main, backend=name, backend_options=options))
