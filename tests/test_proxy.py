import pytest

from imsim.model.config import ServicePolicy
from imsim.rules.proxy import domain_matches, recipient_number, select_policy, to_e164


@pytest.mark.parametrize(("pattern", "domain", "expected"), [
    ("%", "sip.example.com", True),
    ("%.example.com", "sip.example.com", True),
    ("%.example.com", "example.org", False),
    ("sip_.example.com", "sip1.example.com", True),
    ("sip_.example.com", "sip12.example.com", False),
    ("SIP.example.com", "sip.example.com", True),
    ("a\\%b", "a%b", True),
    ("a\\%b", "axxb", False),
    ("a.b", "aXb", False),
])
def test_like_patterns(pattern, domain, expected):
    assert domain_matches(pattern, domain) is expected


def policy(name, pattern="%", priority=1):
    return ServicePolicy(name=name, recipient_domain_pattern=pattern, match_priority=priority)


def test_highest_match_priority_wins():
    chosen = select_policy([policy("low", priority=1), policy("high", priority=5)], "x.com")
    assert chosen.name == "high"


def test_only_matching_policies_are_considered():
    chosen = select_policy([policy("other", "%.org", 9), policy("any", "%", 1)], "x.com")
    assert chosen.name == "any"


def test_no_matching_policy():
    assert select_policy([policy("org", "%.org")], "x.com") is None


def test_tie_break_prefers_specific_pattern_then_name_regardless_of_order():
    a, b, c = policy("b-any", "%"), policy("a-any", "%"), policy("z-exact", "x.com")
    assert select_policy([a, b, c], "x.com").name == "z-exact"
    assert select_policy([c, b, a], "x.com").name == "z-exact"
    assert select_policy([a, b], "x.com").name == "a-any"
    assert select_policy([b, a], "x.com").name == "a-any"


@pytest.mark.parametrize(("typed", "country", "e164"), [
    ("+15551230002", "US", "15551230002"),
    ("+1 (555) 123-0002", "US", "15551230002"),
    ("15551230002", "US", "15551230002"),
    ("5551230002", "US", "15551230002"),
    ("011 44 7700 900123", "US", "447700900123"),
    ("00447700900123", "GB", "447700900123"),
    ("07700 900123", "GB", "447700900123"),
    ("030 1234567", "DE", "49301234567"),
])
def test_e164_translation(typed, country, e164):
    assert to_e164(typed, country) == e164


@pytest.mark.parametrize(("typed", "country", "e164"), [
    ("491711234567", "DE", "491711234567"),     # a German mobile, E.164 without '+'
    ("447700900123", "US", "447700900123"),     # a UK number typed in a US environment
    ("15551230001", "GB", "15551230001"),       # a US number typed in a UK environment
    ("33612345678", "US", "33612345678"),       # a French mobile
    ("8613812345678", "US", "8613812345678"),   # a Chinese mobile
])
def test_e164_without_plus_is_taken_as_written(typed, country, e164):
    """An account's ID is its E.164 number without '+' (handbook: User name = account
    ID); typed so, it is that number, not a national number of the environment's
    country with the country code put in front once more."""
    assert to_e164(typed, country) == e164


@pytest.mark.parametrize(("typed", "country", "e164"), [
    ("4155551234", "US", "14155551234"),        # national numbers stay national
    ("3471234567", "IT", "393471234567"),       # an Italian mobile, no trunk prefix
    ("612345678", "ES", "34612345678"),
    ("9161234567", "RU", "79161234567"),
])
def test_national_numbers_without_trunk_prefix_stay_national(typed, country, e164):
    assert to_e164(typed, country) == e164


@pytest.mark.parametrize("typed", ["alice", "", "+", "12ab"])
def test_untranslatable_user_parts(typed):
    assert to_e164(typed, "US") is None


def test_without_translation_the_user_part_is_used_as_typed():
    assert recipient_number("+15551230002", False, "US") is None
    assert recipient_number("15551230002", False, "US") == "15551230002"
    assert recipient_number("+15551230002", True, "US") == "15551230002"


def reference_like(pattern: str, domain: str) -> bool:
    """LIKE through a regular expression: fine for short inputs, exponential for long."""
    import re

    out, escaped = "", False
    for char in pattern:
        if escaped:
            out, escaped = out + re.escape(char), False
        elif char == "\\":
            escaped = True
        else:
            out += {"%": ".*", "_": "."}.get(char, re.escape(char))
    return re.fullmatch(out, domain, re.IGNORECASE | re.DOTALL) is not None


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(alphabet="ab%_.\\", max_size=8), st.text(alphabet="abAB.%_", max_size=10))
def test_like_agrees_with_a_regular_expression(pattern, domain):
    assert domain_matches(pattern, domain) is reference_like(pattern, domain)


def test_like_is_not_exponential():
    import time

    started = time.monotonic()
    assert not domain_matches("%a" * 100 + "%b", "a" * 250)
    assert time.monotonic() - started < 5  # a hang guard, not a speed goal
