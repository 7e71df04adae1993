"""PortaSIP's part of the message path: service-policy selection and E.164 translation.

Plain functions over `imsim.model.config` objects; the simulator and the lab billing
service both call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

from imsim.model.config import ServicePolicy

_SEPARATORS = re.compile(r"[\s\-().]")


@lru_cache(maxsize=1024)
def like_tokens(pattern: str) -> tuple[str | None, ...]:
    """An SQL LIKE pattern as tokens: None for ``%`` (any string), ``""`` for ``_`` (one
    character), else a literal character (lower case); ``\\`` escapes the next one."""
    tokens: list[str | None] = []
    escaped = False
    for char in pattern:
        if escaped:
            tokens.append(char.lower())
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
        else:
            tokens.append("" if char == "_" else char.lower())
    return tuple(tokens)


def domain_matches(pattern: str, domain: str) -> bool:
    """SQL LIKE, case-insensitive, in O(len(pattern) x len(domain)) at worst: the
    classic wildcard walk that only ever backtracks to the last ``%``."""
    tokens, text = like_tokens(pattern), domain.lower()
    t = p = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(tokens) and tokens[p] is not None and tokens[p] in ("", text[t]):
            t, p = t + 1, p + 1
        elif p < len(tokens) and tokens[p] is None:
            star, mark, p = p, t, p + 1
        elif star >= 0:
            mark += 1
            t, p = mark, star + 1
        else:
            return False
    return all(token is None for token in tokens[p:])


def select_policy(policies: Iterable[ServicePolicy], domain: str) -> ServicePolicy | None:
    """The messaging policy for a recipient domain.

    Highest ``match_priority`` wins; ties go to the more specific pattern (fewer
    wildcards, then longer), then to the policy name, so the choice never depends on
    the order of the list.
    """
    matching = [p for p in policies if domain_matches(p.recipient_domain_pattern, domain)]
    if not matching:
        return None
    return min(matching, key=_policy_rank)


def _policy_rank(policy: ServicePolicy) -> tuple[int, int, int, str]:
    pattern = policy.recipient_domain_pattern
    wildcards = pattern.count("%") + pattern.count("_")
    return (-policy.match_priority, wildcards, -len(pattern), policy.name)


@lru_cache(maxsize=65536)
def to_e164(user_part: str, country: str = "US") -> str | None:
    """Translate a SIP user part to an E.164 number without '+', or None.

    Strips '+', separators and the international prefix; a national number gets the
    country code of ``country`` (an ISO region such as US, GB, DE). Digits without '+'
    that make a better number read as E.164 than as a national number (valid against
    invalid, possible against impossible, or valid both ways) are E.164 already: an
    account's ID, typed as it is written.
    """
    cleaned = _SEPARATORS.sub("", user_part)
    if not cleaned or not cleaned.lstrip("+").isdigit():
        return None
    number = _parse(cleaned, country)
    digits = _digits(number)
    if cleaned.isdigit() and digits != cleaned:   # else both readings are the same number
        digits = _digits(_likelier(_parse(f"+{cleaned}", None), number))
    return digits if digits is not None and 6 <= len(digits) <= 15 else None


def _digits(number: phonenumbers.PhoneNumber | None) -> str | None:
    if number is None:
        return None
    zeros = "0" * (number.number_of_leading_zeros or 1) if number.italian_leading_zero else ""
    return f"{number.country_code}{zeros}{number.national_number}"


def _parse(text: str, country: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None


def _likelier(e164: phonenumbers.PhoneNumber | None,
              national: phonenumbers.PhoneNumber | None) -> phonenumbers.PhoneNumber | None:
    """The E.164 reading of bare digits when it is the better number, else the national."""
    if e164 is None or national is None:
        return national or e164
    as_e164, as_national = _quality(e164), _quality(national)
    return e164 if as_e164 > as_national or as_e164 == as_national == (True, True) else national


def _quality(number: phonenumbers.PhoneNumber) -> tuple[bool, bool]:
    return phonenumbers.is_valid_number(number), phonenumbers.is_possible_number(number)


def recipient_number(user_part: str, translate: bool, country: str) -> str | None:
    """The number billing and lookup use: E.164 when the policy translates, else as typed."""
    if translate:
        return to_e164(user_part, country)
    return user_part if user_part.isdigit() else None
