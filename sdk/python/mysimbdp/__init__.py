"""Write a mysimbdp tenant app in Python: a dataclass for the fields you read, one for the
columns you write, and an accumulator class under ``@aggregate(...)``. The platform decodes,
keys, windows, checkpoints and stores; the SDK snapshots and restores your accumulator.

    from dataclasses import dataclass
    from mysimbdp import aggregate, date, days, on_update, seconds, tumbling

    @dataclass
    class Review:
        star_rating: int

    @dataclass
    class Summary:
        reviews: int
        avg_star_rating: float

    @aggregate(name="my-app", key="product_id", event_time=date("review_date"),
               window=tumbling(days(1)), watermark_delay=days(2), emit=on_update(seconds(1)))
    class Acc:
        reviews: int = 0
        stars: int = 0

        def add(self, r: Review) -> None: ...
        def merge(self, other: "Acc") -> None: ...
        def finish(self) -> Summary: ...
"""

import dataclasses
import typing

__all__ = [
    "Timestamp", "aggregate", "seconds", "minutes", "hours", "days",
    "date", "rfc3339", "epoch_millis", "epoch_seconds", "ingestion",
    "tumbling", "sliding", "session", "on_update", "on_close", "both",
]


class Timestamp(int):
    """A timestamp field: milliseconds since the Unix epoch, UTC."""


def seconds(n: float) -> int:
    """A duration in milliseconds, as every setting takes it."""
    return int(n * 1000)


def minutes(n: float) -> int:
    return seconds(n * 60)


def hours(n: float) -> int:
    return minutes(n * 60)


def days(n: float) -> int:
    return hours(n * 24)


def date(field: str):
    """Event time from a `YYYY-MM-DD` field, read as UTC midnight."""
    return ("field", field, "date")


def rfc3339(field: str):
    return ("field", field, "rfc3339")


def epoch_millis(field: str):
    return ("field", field, "epoch-millis")


def epoch_seconds(field: str):
    return ("field", field, "epoch-seconds")


def ingestion():
    """Event time from the Kafka record's timestamp: for streams that carry no time."""
    return ("ingestion",)


def tumbling(size_ms: int):
    return ("tumbling", size_ms)


def sliding(size_ms: int, slide_ms: int):
    return ("sliding", size_ms, slide_ms)


def session(gap_ms: int):
    """A window per key that closes after `gap_ms` without records for that key."""
    return ("session", gap_ms)


def on_update(interval_ms: int):
    """Every changed window, at most once per interval."""
    return ("on-update", interval_ms)


def on_close():
    """Once per window, when the watermark closes it."""
    return ("on-close", 0)


def both(interval_ms: int):
    """Updates while the window is open, and a last row when it closes."""
    return ("both", interval_ms)


@dataclasses.dataclass
class Registered:
    """The one app of this component, as `@aggregate` declared it."""
    state: type
    input: type
    output: type
    name: str
    version: str
    table: str
    key: typing.List[str]
    event_time: tuple
    window: tuple
    watermark_delay: int
    allowed_lateness: int
    emit: tuple
    state_version: int
    filter: typing.Optional[typing.Callable]
    enrich: typing.Optional[str]


REGISTERED: typing.Optional[Registered] = None


def aggregate(*, name: str, key: typing.Union[str, typing.List[str]], event_time, window, emit,
              table: typing.Optional[str] = None, watermark_delay: int = 0,
              allowed_lateness: int = 0, state_version: int = 1, version: str = "1.0.0",
              filter: typing.Optional[typing.Callable] = None, enrich: typing.Optional[str] = None):
    """Declares the app: the class below is its accumulator (made a dataclass: its fields are
    the state the platform checkpoints); `add`'s argument type names the input fields and
    `finish`'s return type the output columns. `filter(record) -> bool` keeps records. `key`
    is a field or a list of fields (a composite key). `enrich` is the text of an enrich
    declaration (README, "Calling a service from an app"); the component carries it."""
    def register(cls):
        global REGISTERED
        if not dataclasses.is_dataclass(cls):
            cls = dataclasses.dataclass(cls)
        for method in ("add", "merge", "finish"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"{cls.__name__} needs a method `{method}`")
        input_type = typing.get_type_hints(cls.add).get("r") or _first_argument_type(cls.add)
        output_type = typing.get_type_hints(cls.finish).get("return")
        for what, t in (("add's argument", input_type), ("finish's return", output_type)):
            if not dataclasses.is_dataclass(t):
                raise TypeError(f"{cls.__name__}: {what} must be annotated with a dataclass")
        REGISTERED = Registered(
            state=cls, input=input_type, output=output_type, name=name, version=version,
            table=table or name.replace("-", "_"), key=[key] if isinstance(key, str) else list(key),
            event_time=event_time, window=window, watermark_delay=watermark_delay,
            allowed_lateness=allowed_lateness, emit=emit, state_version=state_version,
            filter=filter, enrich=enrich)
        return cls
    return register


def _first_argument_type(method):
    hints = typing.get_type_hints(method)
    hints.pop("return", None)
    return next(iter(hints.values()), None)
