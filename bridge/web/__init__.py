"""HTTP side of the bridge: the aiohttp application and its handlers."""
