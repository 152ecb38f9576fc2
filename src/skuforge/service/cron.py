"""Cron expressions as an operator reads them: checked, the next run times, and a plain-language preview.

    describe("0 2 * * *")              -> "every day at 02:00 (UTC)"
    describe("30 6 * * 1-5", "zh")     -> "工作日（周一至周五）06:30（UTC）"
    next_runs("0 2 * * *", after=t)    -> the next three run times (epoch seconds, UTC)

croniter parses and expands the expression (names, ranges, steps); the preview is then written from the
expanded fields for the shapes schedules take in practice (every N minutes, hourly, daily, on weekdays, on
days of the month), in English and Chinese. Anything else (L, W, #, a day of the month *and* a weekday,
hours that are neither a few nor evenly spaced) is read by cron-descriptor, whose English is exact but
whose phrasing ("At 02:00") and Chinese are stiffer. Schedules run in UTC; the preview says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skuforge.errors import UserError, require

FIELDS = ("minute", "hour", "day of month", "month", "weekday")
ANY = "*"
_DAYS = {
    "en": ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    "zh": ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
}
_MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"],
    "zh": [f"{n}月" for n in range(1, 13)],
}  # fmt: skip
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "every_minute": "every minute",
        "every_n_minutes": "every {n} minutes",
        "every_hour_at": "every hour at minute {m}",
        "every_hour_sharp": "every hour, on the hour",
        "every_n_hours_at": "every {n} hours at minute {m}",
        "every_n_hours_sharp": "every {n} hours, on the hour",
        "hourly_between": "every hour from {first} to {last}",
        "at": "at {times}",
        "every_day": "every day",
        "weekdays": "every weekday (Monday to Friday)",
        "weekends": "every Saturday and Sunday",
        "on_days": "every {days}",
        "month_days": "on day {days} of every month",
        "in_months": "in {months}",
        "and": " and ",
        "sep": ", ",
        "utc": " (UTC)",
    },
    "zh": {
        "every_minute": "每分钟",
        "every_n_minutes": "每 {n} 分钟",
        "every_hour_at": "每小时第 {m} 分",
        "every_hour_sharp": "每小时整点",
        "every_n_hours_at": "每 {n} 小时的第 {m} 分",
        "every_n_hours_sharp": "每 {n} 小时（整点）",
        "hourly_between": "{first} 至 {last} 每小时一次",
        "at": "{times}",
        "every_day": "每天",
        "weekdays": "工作日（周一至周五）",
        "weekends": "每周六、周日",
        "on_days": "每{days}",
        "month_days": "每月 {days} 日",
        "in_months": "{months}",
        "and": "、",
        "sep": "，",
        "utc": "（UTC）",
    },
}


def _croniter() -> Any:
    return require("croniter", "Schedules", "service").croniter


def check(expr: str) -> str:
    """The expression, stripped, if it is a five-field cron expression; else a UserError with an example."""
    text = " ".join((expr or "").split())
    if len(text.split(" ")) != 5 or not _croniter().is_valid(text):
        raise UserError(
            f"'{expr}' is not a cron expression.",
            "Use five fields: minute hour day month weekday, e.g. '0 2 * * *' (02:00 daily), "
            "'*/30 * * * *' (every 30 minutes), '30 6 * * 1-5' (06:30 on weekdays).",
        )
    return text


def next_runs(expr: str, after: float, count: int = 3) -> list[float]:
    """The next `count` run times after `after` (epoch seconds), in UTC."""
    it = _croniter()(check(expr), datetime.fromtimestamp(after, tz=UTC))
    return [float(it.get_next(float)) for _ in range(count)]


def stamp(ts: float | None) -> str:
    """A run time as the console shows it: 'Tue 2025-06-03 02:00 UTC'."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def describe(expr: str, lang: str = "en") -> str:
    """The expression in plain words, in `lang` (en or zh)."""
    expr = check(expr)
    lang = lang if lang in _WORDS else "en"
    expanded, nth = _croniter().expand(expr)
    text = None if nth else _plain(expanded, lang)
    return (text or _fallback(expr, lang)) + _WORDS[lang]["utc"]


def _plain(fields: list[list[Any]], lang: str) -> str | None:
    minutes, hours, days, months, weekdays = fields
    if any(isinstance(v, str) and v != ANY for f in fields for v in f):  # L, W and other specials
        return None
    time = _time_part(minutes, hours, lang)
    day = _day_part(days, months, weekdays, lang)
    if time is None or day is None:
        return None
    w = _WORDS[lang]
    if day == w["every_day"] and not time[1]:  # "every 15 minutes" says it all
        return time[0]
    if lang == "zh":
        return f"{day} {time[0]}" if time[1] else f"{day}{w['sep']}{time[0]}"
    return f"{day} {time[0]}" if time[1] else f"{time[0]}{w['sep']}{day}"


def _step(values: list[Any], span: int) -> int | None:
    """n when `values` is 0, n, 2n, ... covering the whole span (what */n expands to), else None."""
    if values == [ANY] or len(values) < 2 or values[0] != 0:
        return None
    n = values[1]
    return n if values == list(range(0, span, n)) else None


def _time_part(minutes: list[Any], hours: list[Any], lang: str) -> tuple[str, bool] | None:
    """(words, whether they name clock times) for the minute and hour fields, or None if unusual."""
    w = _WORDS[lang]
    if minutes == [ANY]:
        return (w["every_minute"], False) if hours == [ANY] else None
    if (n := _step(minutes, 60)) is not None:
        return (w["every_n_minutes"].format(n=n), False) if hours == [ANY] else None
    if len(minutes) != 1:
        return None
    m = minutes[0]
    if hours == [ANY]:
        return (w["every_hour_sharp"] if m == 0 else w["every_hour_at"].format(m=m)), False
    if (n := _step(hours, 24)) is not None:
        every = w["every_n_hours_sharp"] if m == 0 else w["every_n_hours_at"]
        return every.format(n=n, m=m), False
    if len(hours) > 6 and hours == list(range(hours[0], hours[-1] + 1)):
        first, last = f"{hours[0]:02d}:{m:02d}", f"{hours[-1]:02d}:{m:02d}"
        return w["hourly_between"].format(first=first, last=last), False
    if len(hours) > 6:
        return None
    times = _join([f"{h:02d}:{m:02d}" for h in hours], lang)
    return (w["at"].format(times=times) if lang == "en" else times), True


def _day_part(days: list[Any], months: list[Any], weekdays: list[Any], lang: str) -> str | None:
    w = _WORDS[lang]
    weekdays = sorted({0 if d == 7 else d for d in weekdays}) if weekdays != [ANY] else weekdays
    if days != [ANY] and weekdays != [ANY]:
        return None  # cron runs when either matches: too easy to misread in words
    if weekdays == [1, 2, 3, 4, 5]:
        part = w["weekdays"]
    elif weekdays == [0, 6]:
        part = w["weekends"]
    elif weekdays != [ANY]:
        part = w["on_days"].format(days=_join([_DAYS[lang][d] for d in weekdays], lang))
    elif days != [ANY]:
        part = w["month_days"].format(days=_join([str(d) for d in days], lang))
    else:
        part = w["every_day"]
    if months != [ANY]:
        names = _join([_MONTHS[lang][m - 1] for m in months], lang)
        in_months = w["in_months"].format(months=names)
        part = f"{in_months}{part}" if lang == "zh" else f"{part} {in_months}"
    return part


def _join(parts: list[str], lang: str) -> str:
    w = _WORDS[lang]
    if lang == "zh" or len(parts) < 3:
        return w["and"].join(parts)
    return w["sep"].join(parts[:-1]) + w["and"] + parts[-1]


def _fallback(expr: str, lang: str) -> str:
    descriptor = require("cron_descriptor", "Schedule previews", "service")
    options = descriptor.Options()
    options.use_24hour_time_format = True
    options.locale_code = "zh_CN" if lang == "zh" else "en_US"
    text = str(descriptor.ExpressionDescriptor(expr, options).get_description())
    return text[:1].lower() + text[1:] if lang == "en" else text
