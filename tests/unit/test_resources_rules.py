"""Resources and attributes: parsing, printing, exact arithmetic, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.attributes import format_attributes, parse_attributes
from mesos_zmq.errors import AttributeParseError, ResourceError
from mesos_zmq.resources import (
    MAX_RESOURCE_ENTRIES,
    MAX_SCALAR,
    Resources,
    format_scalar,
    is_ancestor_role,
    parse_user_resources,
    suggest_resource_name,
    validate_role,
)

R = Resources.parse


def test_parse_and_canonical_print() -> None:
    r = R(" mem:1024 ; cpus:4;disk:2048;ports:[31000-32000];gpus:0;zones:{b,a};cpus(eng):2; ")
    assert str(r) == "cpus:4;cpus(eng):2;disk:2048;mem:1024;ports:[31000-32000];zones:{a,b}"
    assert R(str(r)) == r and hash(R(str(r))) == hash(r)
    assert str(R("")) == "" and not R("")
    assert str(R("cpus(*):1.5")) == "cpus:1.5"


def test_scalars_round_to_thousandths_without_drift() -> None:
    total = Resources.empty()
    for _ in range(10):
        total = total + R("cpus:0.1")
    assert total == R("cpus:1") and str(total) == "cpus:1"
    assert str(R("cpus:0.0004")) == "" and str(R("cpus:0.0006")) == "cpus:0.001"
    assert R("mem:0.3") - R("mem:0.1") == R("mem:0.2")


def test_ranges_merge_split_and_sets() -> None:
    r = R("ports:[1-3,4-5,10-20,15-25]")
    assert r.ranges("ports") == [(1, 5), (10, 25)]
    left = r - R("ports:[3-3,12-20]")
    assert str(left) == "ports:[1-2,4-5,10-11,21-25]"
    assert R("z:{a,b,c}") - R("z:{b}") == R("z:{a,c}")
    assert R("ports:[1-10]").contains(R("ports:[2-3,7-7]"))
    assert not R("ports:[1-10]").contains(R("ports:[9-11]"))


def test_contains_respects_roles() -> None:
    pool = R("cpus:2;cpus(eng):2;mem:100")
    assert pool.contains(R("cpus:2;mem:50")) and pool.contains(R("cpus(eng):2"))
    assert not pool.contains(R("cpus:3"))
    assert pool.scalar("cpus") == 4 and pool.scalar("cpus", "eng") == 2
    with pytest.raises(ResourceError, match="not contained"):
        pool - R("cpus:3")


def test_role_views() -> None:
    pool = R("cpus:1;cpus(eng):2;cpus(eng/ml):3;cpus(ops):4")
    assert pool.unreserved() == R("cpus:1")
    assert pool.reserved("eng") == R("cpus(eng):2")
    assert pool.allocatable_to("eng/ml") == R("cpus:1;cpus(eng):2;cpus(eng/ml):3")
    assert pool.allocatable_to("ops") == R("cpus:1;cpus(ops):4")
    assert pool.flatten() == R("cpus:10")
    assert is_ancestor_role("eng", "eng/ml") and not is_ancestor_role("eng", "eng")
    assert not is_ancestor_role("*", "eng") and not is_ancestor_role("en", "eng/ml")


def test_ports_helpers() -> None:
    r = R("ports:[31000-31001,31005-31010]")
    assert r.take_ports(3) == [31000, 31001, 31005]
    assert Resources.from_ports([5, 6, 7, 9]) == R("ports:[5-7,9-9]")
    with pytest.raises(ResourceError, match="need 20 ports"):
        r.take_ports(20)


def test_from_scalars_and_queries() -> None:
    r = Resources.from_scalars({"cpus": 0.25, "mem": 64})
    assert r == R("cpus:0.25;mem:64") and r.scalar_totals() == {"cpus": 0.25, "mem": 64.0}
    assert r.names() == {"cpus", "mem"} and r.roles() == {"*"}
    assert r.without_names(["mem"]) == R("cpus:0.25") == r.filter_names(["cpus"])


@pytest.mark.parametrize(
    "text,bad",
    [
        ("cpus:abc", "cpus:abc"),
        ("cpus:-1", "cpus:-1"),
        ("cpus:nan", "cpus:nan"),
        ("cpus:inf", "cpus:inf"),
        (":4", ":4"),
        ("cpus", "cpus"),
        ("cpus:", "cpus:"),
        ("ports:[5-1]", "ports:[5-1]"),
        ("ports:[a-b]", "ports:[a-b]"),
        ("ports:[1-2", "ports:[1-2"),
        ("cpus(:2", "cpus(:2"),
        ("cpus(.):2", "cpus(.):2"),
        ("cpus( a b):2", "cpus( a b):2"),
        ("1cpus:2", "1cpus:2"),
        ("cpus:4;cpus:[1-2]", "cpus:[1-2]"),
        ("mem:1;z:{a,,b}", "z:{a,,b}"),
    ],
)
def test_invalid_strings_name_the_bad_token(text: str, bad: str) -> None:
    with pytest.raises(ResourceError) as info:
        R(text)
    assert bad in str(info.value)


def test_roles_are_validated() -> None:
    for role in ("eng", "eng/ml", "a-b", "*"):
        assert validate_role(role) == role
    for role in ("", ".", "..", "-x", "a b", "/a", "a/", "a//b", "a/../b", "x*"):
        with pytest.raises(ResourceError):
            validate_role(role)


def test_wire_type_is_checked() -> None:
    with pytest.raises(ResourceError, match="string"):
        Resources.from_wire(5)


def test_attributes_parse_and_format() -> None:
    attrs = parse_attributes("rack:r1;zone:us-east/1a;level:3;ports:[1-2];zones:{a,b}")
    assert attrs == {"rack": "r1", "zone": "us-east/1a", "level": 3.0,
                     "ports": [(1, 2)], "zones": frozenset({"a", "b"})}
    assert parse_attributes(format_attributes(attrs)) == attrs
    for bad in ("rack", "rack:", ":x", "rack:a b", "a:1;a:2", "p:[3-1]", "s:{}"):
        with pytest.raises(AttributeParseError):
            parse_attributes(bad)


scalar_text = st.builds(lambda n, v: f"{n}:{v}", st.sampled_from(["cpus", "mem", "disk"]),
                        st.integers(0, 10**6).map(lambda x: x / 1000))
range_text = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 50)), min_size=1,
                      max_size=4).map(
    lambda rs: "ports:[" + ",".join(f"{lo}-{lo + w}" for lo, w in rs) + "]")
resources = st.lists(scalar_text | range_text, max_size=5).map(lambda ps: R(";".join(ps)))


@settings(max_examples=200, deadline=None)
@given(resources, resources)
def test_arithmetic_properties(a: Resources, b: Resources) -> None:
    # Scalars add like numbers; ranges and sets like sets (as in Mesos).
    assert ((a + b) - b).scalar_totals() == a.scalar_totals()
    assert ((a + b) - b) + b == a + b
    assert (a + b).contains(a) and (a + b).contains(b)
    assert R(str(a)) == a
    assert a + b == b + a


# ----------------------------------------------------------------------------- issue 10


@pytest.mark.parametrize("text", ["disk:1e99", "disk:1e306", "mem:1e400", "cpus:9007199254741",
                                  "cpus:9007199254740.992"])
def test_absurd_amounts_are_refused_not_printed_as_100_digits(text: str) -> None:
    # 1e306 * 1000 used to overflow to inf: an OverflowError, not a ResourceError.
    with pytest.raises(ResourceError, match=r"too large \(at most 9007199254740\.991\)"):
        R(text)


def test_amounts_up_to_the_bound_are_exact() -> None:
    biggest = R("cpus:9007199254740.991")
    assert str(biggest) == "cpus:9007199254740.991" and R(str(biggest)) == biggest
    assert biggest.scalar("cpus") == MAX_SCALAR
    assert str(R("disk:1e12")) == "disk:1000000000000"
    assert str(R("cpus:1.0015")) == "cpus:1.002"  # half to even on the exact decimal
    assert str(R("cpus:1e-3;mem:.5;disk:+2")) == "cpus:0.001;disk:2;mem:0.5"


@pytest.mark.parametrize("text", ["cpus:1_000", "cpus:0x10", "cpus:sNaN", "cpus:Infinity",
                                  "cpus:-inf"])
def test_what_people_would_not_call_a_number_is_refused(text: str) -> None:
    with pytest.raises(ResourceError, match=text.partition(":")[2]):
        R(text)


@pytest.mark.parametrize("text,fixed", [
    ("cpus:4,mem:100", "cpus:4;mem:100"),
    ("cpus:4, mem:100", "cpus:4;mem:100"),
    ("cpus:4 mem:100", "cpus:4;mem:100"),
    ("ports:[1-2],cpus(eng):4", "ports:[1-2];cpus(eng):4"),
    ("cpus: 4,mem:100;disk:1", "cpus:4;mem:100;disk:1"),
])
def test_comma_separated_resources_get_the_separator_hint(text: str, fixed: str) -> None:
    with pytest.raises(ResourceError) as info:
        R(text)
    assert f"use ';' between resources: {fixed}" in str(info.value)


def test_no_separator_hint_where_there_is_no_second_resource() -> None:
    for text in ("cpus:4,5", "ports:[1-2,3-4", "cpus:abc"):
        with pytest.raises(ResourceError) as info:
            R(text)
        assert "between resources" not in str(info.value)


def test_user_resources_keep_zero_names_and_warn_about_typos() -> None:
    parsed = parse_user_resources("cpus:0;cpu:4;Mem:64;memory:1;ports:4;licenses:3;"
                                  "gpus:0.0001;disk:10")
    assert parsed.resources == R("cpu:4;Mem:64;memory:1;ports:4;licenses:3;disk:10")
    assert parsed.names >= {"cpus", "gpus", "cpu", "disk"}
    text = "\n".join(parsed.warnings)
    assert "unknown resource 'cpu' (in 'cpu:4'): did you mean 'cpus'?" in text
    assert "'Mem'" in text and "'memory'" in text and "did you mean 'mem'?" in text
    assert "'ports' (in 'ports:4') is a scalar" in text
    assert "'gpus:0.0001' rounds to 0" in text
    assert "licenses" not in text and "disk" not in text  # custom names are legal
    assert len(parsed.warnings) == 5
    assert parse_user_resources("cpus:4;mem:64;ports:[1-2]").warnings == ()


def test_typo_suggestions_are_one_edit_away() -> None:
    assert [suggest_resource_name(n) for n in ("cpu", "cpsu", "CPUS", "gpu", "dsk", "mems",
                                               "port")] == [
        "cpus", "cpus", "cpus", "gpus", "disk", "mem", "ports"]
    assert [suggest_resource_name(n) for n in ("cpus", "licenses", "mx", "ram2")] == [
        None, None, None, None]


def test_format_scalar_never_uses_an_exponent() -> None:
    assert format_scalar(1234567.0) == "1234567" and format_scalar(0.1 + 0.2) == "0.3"
    assert format_scalar(2.5e12) == "2500000000000" and format_scalar(0.0004) == "0"


def test_parsed_texts_are_reused_and_bad_ones_still_refused() -> None:
    first = Resources.parse("cpus:0.1;mem:16")
    assert Resources.parse("cpus:0.1;mem:16") is first  # immutable: shared safely
    assert Resources.parse("cpus:0.1;mem:16", "eng") != first  # the role is part of it
    for _ in range(2):
        with pytest.raises(ResourceError):
            Resources.parse("cpus:-1")


def test_a_counted_total_equals_adding_each_copy() -> None:
    small = Resources.parse("cpus:0.25;mem:32")
    port = Resources.parse("cpus:1;ports:[31000-31000]")
    pairwise = Resources.empty()
    for res in [small] * 7 + [port] * 2:
        pairwise = pairwise + res
    assert Resources.total([(small, 7), (port, 2)]) == pairwise
    assert Resources.total([]) == Resources.empty()
    scalar, ranges = Resources.parse("foo:1"), Resources.parse("foo:[1-2]")
    with pytest.raises(ResourceError, match="different kinds"):
        Resources.total([(scalar, 1), (ranges, 1)])


def test_from_wire_remembers_what_it_accepted_never_what_it_refused() -> None:
    text = "cpus:0.25;mem:48;ports:[31000-31004]"
    first = Resources.from_wire(text)
    assert Resources.from_wire(text) is first  # checked once, served again
    too_many = ";".join(f"r{i}:1" for i in range(MAX_RESOURCE_ENTRIES + 1))
    for _ in range(2):
        with pytest.raises(ResourceError, match="entries"):
            Resources.from_wire(too_many)

    class Tagged(Resources):
        __slots__ = ()

    assert type(Tagged.from_wire(text)) is Tagged  # a subclass gets its own kind


@given(st.lists(st.tuples(st.sampled_from(["cpus:0.1;mem:32", "cpus:1.5;gpus:1",
                                           "mem(r):7;disk:0.001", "ports:[1-5];cpus:2"]),
                          st.integers(1, 5)), max_size=6))
def test_scalar_sum_is_the_totals_scalars(parts: list[tuple[str, int]]) -> None:
    counted = [(Resources.parse(text), count) for text, count in parts]
    assert Resources.scalar_sum(counted) == Resources.total(counted).scalar_totals()
