# Freezes the device packages into a MicroPython firmware you build yourself: their bytecode then runs
# from flash, like a ROMFS image, and costs no heap. From the MicroPython source tree, for example:
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/this/manifest.py
# The board's main.py and config.py (boards/<board>/) stay files on the board's filesystem.
include("$(BOARD_DIR)/manifest.py")   # what the board freezes anyway (asyncio, ...)
package("sp_common")
package("sp_micropython")
