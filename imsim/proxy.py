"""PortaSIP's part of the message path: service-policy selection and E.164 translation.

Plain functions over `imsim.config` objects; the simulator and the lab billing
service both call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

from imsim.config import ServicePolicy

_SEPARATORS = re.compile(r"[\s\-().]")


@lru_cache(maxsize=1024)
def like_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an SQL LIKE pattern: ``%`` any string, ``_`` one character, ``\\`` escapes."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def domain_matches(pattern: str, domain: str) -> bool:
    return like_pattern(pattern).fullmatch(domain) is not None


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
    country code of ``country`` (an ISO region such as US, GB, DE).
    """
    cleaned = _SEPARATORS.sub("", user_part)
    if not cleaned or not cleaned.lstrip("+").isdigit():
        return None
    try:
        number = phonenumbers.parse(cleaned, country)
    except phonenumbers.NumberParseException:
        return None
    digits = f"{number.country_code}{number.national_number}"
    if number.italian_leading_zero:
        digits = f"{number.country_code}{'0' * (number.number_of_leading_zeros or 1)}"
        digits += str(number.national_number)
    return digits if 6 <= len(digits) <= 15 else None


def recipient_number(user_part: str, translate: bool, country: str) -> str | None:
    """The number billing and lookup use: E.164 when the policy translates, else as typed."""
    if translate:
        return to_e164(user_part, country)
    return user_part if user_part.isdigit() else None
