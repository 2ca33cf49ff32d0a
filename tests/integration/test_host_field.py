"""What MariaDB 10.11 writes in the host field, read by the rules made for MariaDB 12.

MariaDB 12 writes ``host:port``; this machine's server is 10.11, which writes the host
alone, and for an IPv6 client the bare address: ``::1``. That is why ``client_port``
leaves an unbracketed IPv6 address whole outside the Enterprise dialect (its last group
looks like a port), and why the eleventh field is never sought in a ten-field record
whose host merely ends in a number. A private server (its own port and socket) listens
on the IPv6 loopback for this.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import private_mariadb
import pytest

from auditsync import Dialect, format_line, parse_line

pytestmark = pytest.mark.mariadb(private=True)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def ipv6_server() -> Iterator[private_mariadb.PrivateMariaDB]:
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1) to listen on")
    with private_mariadb.private_mariadb(extra_options=["--bind-address=::1"]) as server:
        yield server


def test_an_ipv6_client_is_written_bare_and_read_without_a_port(
    ipv6_server: private_mariadb.PrivateMariaDB,
) -> None:
    import pymysql

    ipv6_server.execute("CREATE USER 'formats_v6'@'::1' IDENTIFIED BY 'formats'")
    start = ipv6_server.audit_offset()
    client = pymysql.connect(
        host="::1", port=ipv6_server.port, user="formats_v6", password="formats"
    )
    with client.cursor() as cursor:
        cursor.execute("SELECT 1")
    client.close()
    with ipv6_server.connect() as admin, admin.cursor() as cursor:  # the socket
        cursor.execute("SELECT 2")
    end = ipv6_server.audit_settled(start)
    lines = ipv6_server.audit_log(start, end).decode().splitlines()
    events = [parse_line(line) for line in lines]
    mine = [event for event in events if event.username == "formats_v6"]
    assert [event.operation for event in mine] == [
        "CONNECT",
        "QUERY",
        "QUERY",
        "QUERY",
        "DISCONNECT",
    ]
    for event in mine:
        assert event.host == "::1"
        assert (event.client_host, event.client_port) == ("::1", None)
        assert (event.tls_version, event.dialect, event.retcode) == (None, Dialect.MARIADB, 0)
    root = [event for event in events if event.username == "root" and event.query_id]
    assert {(event.host, event.client_host, event.client_port) for event in root} == {
        ("localhost", "localhost", None)
    }
    for line, event in zip(lines, events, strict=True):
        assert format_line(event) == line
