"""fcgisgi (ASGI over FastCGI) serving benchasgi on the unix socket given as
the argument: fcgisgi has no command line of its own."""

import asyncio
import sys

from benchasgi import app
from fcgisgi import run_asgi_server

asyncio.run(run_asgi_server(app, sys.argv[1]))
