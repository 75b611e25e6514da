"""python -m sp_tool: the sp command."""
import sys

from .cli import main

sys.exit(main())
