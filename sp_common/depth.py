"""How deep a board's data nests: looked at only when its JSON has more brackets than a peer takes levels.

MicroPython's json writes data of any depth; every peer's decode drops a
frame nested deeper than 32 levels (sp_common.codec), so a board refuses to
send it. The host looks at its JSON text instead (sp_common.host_json).
"""


def deeper_than(value, levels):
    """Whether value holds arrays and objects nested more than levels deep."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return False
    if not levels:
        return True
    for item in value:
        if deeper_than(item, levels - 1):
            return True
    return False
