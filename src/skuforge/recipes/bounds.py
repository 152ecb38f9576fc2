"""The bounds every recipe render runs within: time, loop steps, and the size of anything it builds.

Recipes come from users (and, through the service, from anyone with a token), so a template must not be
able to exhaust memory or CPU. Checking the output after a render is too late: `{{ 'x'|center(999999999) }}`
allocates a gigabyte before it returns. So each way a template can grow a value is checked *before* it
runs, against the same limit as the whole output (`MAX_TEXT`, 200,000 characters):

- filters with a size argument (`center`, `indent`, `format`, `wordwrap`, `join`, `replace`, `batch`,
  `slice`, `sum`) and filters that serialise (`string`, `tojson`, `pprint`, `list`, `xmlattr`, `urlencode`);
- the string methods that pad or repeat (`ljust`, `zfill`, `expandtabs`, `replace`, `join`, `translate`,
  `format` and its width specs), the operators `*`, `+`, `**` and `%`, and `~` concatenation;
- every `{{ ... }}` value before it becomes text, and in total per render (which bounds what `{% set %}`
  blocks, macros and `{% filter %}` blocks capture), and the result of every call (macros included).

Loops are counted (`MAX_LOOP_STEPS` per render, `range()` at most `MAX_ITERATIONS` items) and every hook
checks the per-render deadline (`RENDER_SECONDS`), so a template that only burns CPU stops too. Time
spent in `knowledge()` and `examples()` (embedding models load on first use) does not count.

The template source is rewritten once at compile time (`bound_tree`) so that `for` loops, `~` and capture
blocks go through these checks; the rest are sandbox hooks in `sandbox._Env`.
"""

from __future__ import annotations

import contextvars
import operator
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 200_000
"""Characters one render may produce; also the largest text, list or JSON any single operation may build."""
MAX_TEXT = MAX_OUTPUT
MAX_EMITTED = 5 * MAX_OUTPUT
"""Characters of `{{ ... }}` values one render may produce in all, captured or not."""
MAX_ITERATIONS = 10_000
"""Items a `range()` may have, and range items one render may iterate."""
MAX_LOOP_STEPS = 20_000
"""Iterations of all `for` loops in one render."""
MAX_SEQUENCE = 100_000
"""Items one list or tuple repetition may build."""
MAX_INT_BITS = 10_000
MAX_EXPONENT = 64
RENDER_SECONDS = 2.0
"""Wall-clock seconds one render may take (a recipe's templates render in well under a millisecond)."""


class BudgetError(SecurityError):
    """A render went over one of its bounds: size, loop steps or time."""


@dataclass
class Budget:
    """What one render has used so far."""

    deadline: float
    range_items: int = 0
    loop_steps: int = 0
    emitted: int = 0


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("recipe_budget", default=None)


def start() -> contextvars.Token[Budget | None]:
    """A fresh budget for one render or expression evaluation; hand the token to `stop` when done.
    (Not a context manager: this runs several times per request, and a bare pair costs less.)"""
    return _budget.set(Budget(deadline=time.monotonic() + RENDER_SECONDS))


def stop(token: contextvars.Token[Budget | None]) -> None:
    _budget.reset(token)


@contextmanager
def paused() -> Iterator[None]:
    """Time spent inside (a knowledge-base lookup) does not count against the render's deadline."""
    start = time.monotonic()
    try:
        yield
    finally:
        budget = _budget.get()
        if budget is not None:
            budget.deadline += time.monotonic() - start


def tick() -> None:
    """Stop the render when it is past its deadline."""
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise BudgetError(f"the render took longer than {RENDER_SECONDS:g} s")


def require(size: int, what: str) -> None:
    """Refuse to build `what` when it would be larger than MAX_TEXT characters (or items)."""
    tick()
    if size > MAX_TEXT:
        raise BudgetError(f"{what} would be {size:,} characters long, over the limit of {MAX_TEXT:,}")


def weigh(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` takes as text or JSON; stops counting once past `limit`, so the
    cost is bounded however large or self-repeating (`[x] * n` nested) the value is."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{what} must be a whole number, got {value!r}") from None


# -- loops, concatenation, captured output ------------------------------------------------------------


def counted_range(*args: int) -> Iterator[int]:
    """`range()` in templates: at most MAX_ITERATIONS items, and as many in all per render."""
    values = range(*args)
    if len(values) > MAX_ITERATIONS:
        raise BudgetError(f"range() of {len(values):,} items is over the limit of {MAX_ITERATIONS:,}")
    budget = _budget.get()
    for value in values:
        if budget is not None:
            budget.range_items += 1
            if budget.range_items > MAX_ITERATIONS:
                raise BudgetError(f"the template looped more than {MAX_ITERATIONS:,} times")
        yield value


def loop_steps(iterable: Any) -> Iterator[Any]:
    """Every `for` loop iterates through this: steps are counted and the deadline is checked."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.loop_steps += 1
            if budget.loop_steps > MAX_LOOP_STEPS:
                raise BudgetError(f"the template's loops ran more than {MAX_LOOP_STEPS:,} steps")
            if budget.loop_steps % 64 == 0:
                tick()
        yield item


def concat(pieces: list[Any]) -> str:
    """`a ~ b ~ c`, with the size of the result checked before it is built."""
    texts = [piece if isinstance(piece, str) else _as_text(piece) for piece in pieces]
    require(sum(len(text) for text in texts), "a '~' concatenation")
    return "".join(texts)


def _as_text(value: Any) -> str:
    require(weigh(value), "a value as text")
    return str(value)


def emitted(value: Any) -> Any:
    """Every `{{ ... }}` value (the environment's `finalize`): sized before it becomes text, and counted."""
    size = len(value) if isinstance(value, str) else weigh(value)
    if size > MAX_TEXT:
        require(size, "a '{{ }}' value")
    budget = _budget.get()
    if budget is not None:
        budget.emitted += size
        if budget.emitted > MAX_EMITTED:
            raise BudgetError(f"the template produced more than {MAX_EMITTED:,} characters in all")
    return value


def captured(value: Any) -> Any:
    """What a `{% set %}` or `{% filter %}` block captured."""
    require(weigh(value), "a captured block")
    return value


class _Bounding(NodeTransformer):
    """Rewrites a template so loops, `~` and capture blocks go through the functions above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "_sf_loop", node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "_sf_concat", node.lineno)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        node.filter = _filter(node.filter, "_sf_captured", node.lineno)
        return node

    def visit_FilterBlock(self, node: nodes.FilterBlock) -> nodes.Node:
        self.generic_visit(node)
        node.filter = _filter(node.filter, "_sf_captured", node.lineno)
        return node


def _filter(inner: Any, name: str, lineno: int) -> nodes.Filter:
    return nodes.Filter(inner, name, [], [], None, None, lineno=lineno)


def bound_tree(tree: nodes.Template) -> nodes.Template:
    """The template's syntax tree with the bounding rewrites applied (see `_Bounding`)."""
    return _Bounding().visit(tree)


# -- filters -------------------------------------------------------------------------------------------


def _width_of(width: Any) -> int:
    return len(width) if isinstance(width, str) else _int(width, "the width")


def _check_center(value: Any, width: Any = 80) -> None:
    require(max(len(str(value)), _int(width, "center's width")), "center()")


def _check_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(value)
    require(len(text) + _width_of(width) * (text.count("\n") + 1), "indent()")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), kwargs or args)


def _check_wordwrap(value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    text = str(value)
    _int(width, "wordwrap's width")
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None)
    require(len(text) + len(str(wrapstring or "\n")) * (len(text) + 1), "wordwrap()")


def _check_replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    predict_replace(str(value), str(old), str(new), count)


def _check_count(what: str) -> Callable[..., None]:
    def check(value: Any, count: Any, *args: Any, **kwargs: Any) -> None:
        if _int(count, f"{what}'s count") > MAX_SEQUENCE:
            raise BudgetError(f"{what}({count}) is over the limit of {MAX_SEQUENCE:,}")

    return check


def _check_weight(what: str) -> Callable[..., None]:
    def check(value: Any, *args: Any, **kwargs: Any) -> None:
        require(weigh(value), f"{what}()")

    return check


def _bounded(name: str, check: Callable[..., None], original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` (a Jinja filter) with `check` run on its arguments first; Jinja's pass_* marker kept."""
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args[skip:], **kwargs)
        return original(*args, **kwargs)

    bounded.__name__ = f"bounded_{name}"
    if skip:
        bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _bounded_join(original: Callable[..., Any]) -> Callable[..., Any]:
    """`join`: the items are listed (at most MAX_SEQUENCE) and the joined size checked first."""

    def bounded(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        items = _take(value, "join")
        require(weigh(items) + len(str(d)) * max(len(items) - 1, 0), "join()")
        return original(eval_ctx, items, d, attribute)

    bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _bounded_sum(original: Callable[..., Any]) -> Callable[..., Any]:
    """`sum`: adding lists or text (`sum(start=[])`) builds a sequence; its size is checked first."""

    def bounded(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        items = _take(iterable, "sum")
        if isinstance(start, _SEQUENCES) or any(isinstance(i, _SEQUENCES) for i in items):
            require(weigh(items) + weigh(start), "sum()")
        return original(environment, items, attribute, start)

    bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _take(iterable: Any, what: str) -> list[Any]:
    items: list[Any] = []
    for item in iterable if isinstance(iterable, Iterable) else [iterable]:
        items.append(item)
        if len(items) > MAX_SEQUENCE:
            raise BudgetError(f"{what}() over more than {MAX_SEQUENCE:,} items")
    return items


def bounded_filters(extra: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters to install over Jinja's (and over `extra`, e.g. our `tojson`)."""
    originals = {**DEFAULT_FILTERS, **extra}
    checks: dict[str, Callable[..., None]] = {
        "center": _check_center,
        "indent": _check_indent,
        "format": _check_format,
        "wordwrap": _check_wordwrap,
        "replace": _check_replace,
        "batch": _check_count("batch"),
        "slice": _check_count("slice"),
    }
    for name in ("string", "tojson", "pprint", "list", "xmlattr", "urlencode"):
        checks[name] = _check_weight(name)
    out = {name: _bounded(name, check, originals[name]) for name, check in checks.items()}
    out["join"] = _bounded_join(originals["join"])
    out["sum"] = _bounded_sum(originals["sum"])
    # pass_context keeps Jinja's optimiser from running these at compile time (a loop's generator would
    # then be baked into the template and shared by every render)
    out["_sf_loop"] = pass_context(lambda _context, iterable: loop_steps(iterable))
    out["_sf_concat"] = pass_context(lambda _context, pieces: concat(pieces))
    out["_sf_captured"] = pass_context(lambda _context, value: captured(value))
    return out


# -- operators, methods, str.format ---------------------------------------------------------------------


_SEQUENCES = (str, bytes, bytearray, list, tuple)


def binop(op: str, left: Any, right: Any) -> Any:
    """`*`, `**`, `+` and `%` in templates, refused when the result would be too large."""
    tick()
    if op == "*":
        _check_multiply(left, right)
    elif op == "**":
        _check_power(left, right)
    elif op == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        require(weigh(left) + weigh(right), "a '+' of two sequences")
    elif op == "%" and isinstance(left, str):
        check_percent(left, right)
    return _OPERATORS[op](left, right)


_OPERATORS = {"*": operator.mul, "**": operator.pow, "+": operator.add, "%": operator.mod}


def _check_multiply(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            if len(seq) * times > MAX_SEQUENCE:
                raise BudgetError(f"repetition to {len(seq) * times:,} items is over {MAX_SEQUENCE:,}")
            require(weigh(seq) * max(times, 0), "a repetition")
    numbers = isinstance(left, int) and isinstance(right, int)
    if numbers and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise BudgetError(f"a product of numbers over {MAX_INT_BITS:,} bits")


def _check_power(left: Any, right: Any) -> None:
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
        raise BudgetError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() * max(right, 0) > MAX_INT_BITS:
        raise BudgetError(f"a power of numbers over {MAX_INT_BITS:,} bits")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def check_percent(fmt: str, args: Any) -> None:
    """`'%-999999999s' % x` and `'%s'|format(x)`: widths, precisions and arguments within the limit."""
    values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
    stars = [v for v in values if isinstance(v, int)]
    widths = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                widths += max(stars, default=0)
            elif number:
                widths += int(number)
    require(len(fmt) + widths + sum(weigh(v) for v in values), "a '%' format")


def check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`'{:>999999999}'.format(x)`: the widths and precisions of every field, and the arguments."""
    widths = 0
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format itself raises the same error
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise BudgetError("nested replacement fields in a format spec are not allowed in recipes")
        widths += sum(int(number) for number in re.findall(r"\d+", spec or ""))
    weights = sum(weigh(a) for a in args) + sum(weigh(v) for v in kwargs.values())
    require(len(fmt) + widths + weights, "a str.format()")


def predict_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and _int(count, "replace's count") >= 0:
        hits = min(hits, int(count))
    require(len(text) + hits * max(len(new) - len(old), 0), "replace()")


def method_args(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Before a str/bytes method that pads, repeats or replaces runs: the size it would build. Returns the
    arguments to call it with (`join`'s iterable is listed first, so that its size can be checked)."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str | bytes | bytearray):
        return args
    name, first = getattr(obj, "__name__", ""), args[0] if args else None
    if name in ("center", "ljust", "rjust", "zfill"):
        require(max(len(owner), _int(kwargs.get("width", first), "the width")), f"str.{name}()")
    elif name == "expandtabs":
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        size = _int(kwargs.get("tabsize", 8 if first is None else first), "tabsize")
        require(len(owner) + tabs * size, "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        predict_replace(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"))
    elif name == "join" and args:
        items = _take(first, "str.join")
        require(weigh(items) + len(owner) * max(len(items) - 1, 0), "str.join()")
        return (items, *args[1:])
    elif name == "translate":
        table = first.values() if isinstance(first, Mapping) else ()
        longest = max((len(v) for v in table if isinstance(v, str)), default=1)
        require(len(owner) * longest, "str.translate()")
    return args


def check_result(value: Any) -> Any:
    """After any call (a macro included): a result too large to keep is refused."""
    if isinstance(value, _SEQUENCES):
        require(weigh(value), "a call's result")
    return value
