"""Predicates over events and how they compose."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given

from auditsync import AuditEvent, parse_line
from auditsync.filters import (
    EXCLUDE_RDSADMIN,
    between,
    database,
    exclude_user,
    failed,
    kind,
    operation,
    table,
    user,
    writes_only,
)
from auditsync.testing import audit_events

QUERY = parse_line("20240131 14:02:07,db1,app,h,5,12,QUERY,shop_eu,'select 1',0")
ERROR = parse_line("20240131 14:02:08,db1,rdsadmin,h,6,13,QUERY,mysql,'select x',1054")
LOGIN = parse_line("20240131 14:02:09,db1,app,h,7,0,FAILED_CONNECT,,,1045")


def test_operation_is_case_insensitive_in_its_arguments() -> None:
    keep = operation("query")
    assert keep(QUERY)
    assert not keep(LOGIN)


def test_database_and_user_take_names_and_globs() -> None:
    assert database("shop_*")(QUERY)
    assert not database("shop_*")(ERROR)
    assert database("mysql", "other")(ERROR)
    assert user("app")(QUERY)
    assert not user("ap")(QUERY)
    assert user("rds*")(ERROR)


def test_exclude_user_and_the_rdsadmin_preset() -> None:
    assert not EXCLUDE_RDSADMIN(ERROR)
    assert EXCLUDE_RDSADMIN(QUERY)
    assert exclude_user("app")(ERROR)


def test_failed_means_a_non_zero_retcode() -> None:
    assert failed()(ERROR)
    assert failed()(LOGIN)
    assert not failed()(QUERY)


def test_between_is_half_open_and_needs_aware_times() -> None:
    at = datetime(2024, 1, 31, 14, 2, 8, tzinfo=UTC)
    assert between(since=at)(ERROR)
    assert not between(until=at)(ERROR)
    assert between(QUERY.timestamp, at)(QUERY)
    assert between()(QUERY)
    with pytest.raises(ValueError, match="aware"):
        between(since=datetime(2024, 1, 1))


def test_composition_and_description() -> None:
    keep = operation("QUERY") & ~failed() | user("nobody")
    assert keep(QUERY)
    assert not keep(ERROR)
    assert str(keep) == "((operation('QUERY',) & ~failed()) | user('nobody',))"


@given(audit_events(), audit_events())
def test_algebra_matches_boolean_logic(first: AuditEvent, second: AuditEvent) -> None:
    a, b = operation("QUERY"), failed()
    for event in (first, second):
        assert (a & b)(event) == (a(event) and b(event))
        assert (a | b)(event) == (a(event) or b(event))
        assert (~a)(event) == (not a(event))


INSERT = parse_line(
    "20240131 14:02:07,db1,app,h,5,14,QUERY,shop,"
    "'insert into orders_2024 select * from archive.o',0"
)
SELECT = parse_line("20240131 14:02:07,db1,app,h,5,15,QUERY,shop,'select * from orders',0")
WRITE_EVENT = parse_line("20240131 14:02:07,db1,app,h,5,14,WRITE,shop,orders_2024,")


def test_statement_is_classified_once_for_queries_only() -> None:
    assert INSERT.statement is not None
    assert INSERT.statement.kind == "INSERT"
    assert INSERT.statement is INSERT.statement
    assert LOGIN.statement is None


def test_table_matches_written_tables_qualified_by_the_event_database() -> None:
    assert table("shop.orders*")(INSERT)
    assert not table("archive.*")(INSERT)
    assert table("archive.*", reads=True)(INSERT)
    assert not table("shop.orders*")(SELECT)
    assert table("shop.orders*")(WRITE_EVENT)
    assert not table("shop.*")(LOGIN)


def test_kind_and_writes_only() -> None:
    assert kind("insert", "update")(INSERT)
    assert not kind("update")(INSERT)
    assert writes_only()(INSERT)
    assert not writes_only()(SELECT)
    assert not writes_only()(WRITE_EVENT)
    assert not kind("SELECT")(LOGIN)


def test_an_unknown_kind_is_refused_rather_than_matching_nothing() -> None:
    with pytest.raises(ValueError, match="unknown statement kind 'INSRET'"):
        kind("insert", "insret")
