"""An event loop on its own thread, for clients bound to one loop (vLLM's AsyncLLM, httpx).

Rollouts call `asyncio.run` once per iteration and the trainer syncs weights from plain
code; both reach the engine's loop through `submit` (awaitable from any loop) and `run`
(blocking).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable


class BackgroundLoop:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable, timeout: float | None = None) -> Any:
        """Run `coro` on the background loop and wait for it (from synchronous code)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def submit(self, coro: Awaitable) -> Any:
        """Await `coro` on the background loop, from the caller's loop (directly when it is that loop)."""
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        if self.loop.is_running():
            try:  # end the clients' own tasks before the loop stops, so none is destroyed pending
                self.run(_cancel_other_tasks(), timeout=5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


async def _cancel_other_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
