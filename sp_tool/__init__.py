"""The sp command and what it drives: the virtual board, deploying with mpremote, calls, serving, monitoring.

Installed with the library; the device packages and board folders it puts on
boards come with it (see sp_tool.files).
"""
