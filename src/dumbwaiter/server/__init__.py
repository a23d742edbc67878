"""The asyncio side: listeners, connections, the thread pool, one serving process."""
