"""Wi-Fi station set-up for ESP32 and the Pico W (network.WLAN). Not available on the unix port."""
import time

import network


def connect(ssid, password, timeout_ms=15000):
    """Joins ssid and returns the IP address; raises OSError on bad credentials or timeout."""
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
    failed = {}
    for name, text in (('STAT_WRONG_PASSWORD', 'wrong password'), ('STAT_NO_AP_FOUND', 'network not found'),
                       ('STAT_CONNECT_FAIL', 'connection failed')):
        if hasattr(network, name):
            failed[getattr(network, name)] = text
    start = time.ticks_ms()
    while not wlan.isconnected():
        status = wlan.status()
        if status in failed:
            wlan.active(False)
            raise OSError('wifi %r: %s' % (ssid, failed[status]))
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            wlan.active(False)
            raise OSError('wifi %r: no connection after %d ms (status %r)' % (ssid, timeout_ms, status))
        time.sleep_ms(100)
    return wlan.ifconfig()[0]


def from_config(config, client):
    """Joins WIFI_SSID, then the TCP stream of sp_micropython.tcp; None without an SSID."""
    if not config.WIFI_SSID:
        print('no WIFI_SSID in config.py: TCP skipped')
        return None
    print('wifi: %s, port %d' % (connect(config.WIFI_SSID, config.WIFI_PASSWORD), config.TCP_PORT))
    from . import tcp
    return tcp.from_config(config, client)
