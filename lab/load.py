"""sipp command lines for the lab: a registered MESSAGE receiver, an authenticated sender,
and the security probes (a request without credentials, refused credentials).

The scenarios live in lab/sipp/. sipp runs in the background (-bg is not used: the
caller owns the process and its timeout).
"""

from __future__ import annotations

from pathlib import Path

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


def receiver_argv(port: int, trace_dir: Path | None = None, sipp: str = "sipp") -> list[str]:
    """sipp answering every MESSAGE with 200 on 127.0.0.1:port (register that contact)."""
    argv = [sipp, "-sf", str(SIPP_DIR / "uas_message.xml"), "-i", "127.0.0.1",
            "-p", str(port), "-nostdin", "-nd"]
    return argv + _trace(trace_dir)


def sender_argv(proxy: tuple[str, int], sender: tuple[str, str, str], to_user: str,
                calls: int, rate: float, prefix: str = "sipp", sipp: str = "sipp",
                trace_dir: Path | None = None, timeout_s: int = 60,
                recv_timeout_ms: int = 5000, rtt: bool = False) -> list[str]:
    """sipp sending `calls` MESSAGEs from sender (user, domain, password) at `rate`/s;
    a call without its answer after `recv_timeout_ms` fails. With `rtt`, each call's
    response time goes to uac_message_<pid>_rtt.csv in sipp's working directory
    (`response_times`)."""
    user, domain, password = sender
    argv = [sipp, f"{proxy[0]}:{proxy[1]}", "-sf", str(SIPP_DIR / "uac_message.xml"),
            "-i", "127.0.0.1", "-p", "0", "-m", str(calls), "-r", str(rate), "-rp", "1000",
            "-l", str(max(1, int(rate))), "-au", user, "-ap", password,
            "-key", "from", user, "-key", "to", to_user, "-key", "domain", domain,
            "-key", "prefix", prefix, "-nostdin", "-timeout", f"{timeout_s}s",
            "-timeout_error", "-recv_timeout", str(recv_timeout_ms)]
    return argv + (["-trace_rtt", "-rtt_freq", "1"] if rtt else []) + _trace(trace_dir)


def response_times(folder: Path) -> list[float]:
    """Seconds from each answered call's first MESSAGE to its 200, from the files a
    sender with `rtt` wrote in `folder` (lines "date_ms;response_time_ms;rtd_no")."""
    times = []
    for path in folder.glob("uac_message_*_rtt.csv"):
        for line in path.read_text().splitlines():
            fields = line.split(";")
            if len(fields) >= 2 and fields[1].replace(".", "", 1).isdigit():
                times.append(float(fields[1]) / 1000)
    return times


def probe_argv(proxy: tuple[str, int], scenario: str, sender: str, domain: str,
               to_user: str, calls: int = 3, auth: tuple[str, str] | None = None,
               prefix: str = "probe", sipp: str = "sipp", timeout_s: int = 20) -> list[str]:
    """sipp playing a security probe: "uac_noauth_<method>.xml" (MESSAGE, PUBLISH or
    SUBSCRIBE without credentials: only 407 accepted) or "uac_refused.xml" (a MESSAGE
    with `auth` = (user, password): only 403 accepted)."""
    argv = [sipp, f"{proxy[0]}:{proxy[1]}", "-sf", str(SIPP_DIR / scenario),
            "-i", "127.0.0.1", "-p", "0", "-m", str(calls), "-r", "50", "-l", "10",
            "-key", "from", sender, "-key", "to", to_user, "-key", "domain", domain,
            "-key", "prefix", prefix, "-nostdin", "-timeout", f"{timeout_s}s",
            "-timeout_error", "-recv_timeout", "3000"]
    return argv + (["-au", auth[0], "-ap", auth[1]] if auth else [])


def _trace(trace_dir: Path | None) -> list[str]:
    if trace_dir is None:
        return []
    return ["-trace_stat", "-stf", str(trace_dir / "sipp_stat.csv"),
            "-trace_err", "-error_file", str(trace_dir / "sipp_errors.log")]
