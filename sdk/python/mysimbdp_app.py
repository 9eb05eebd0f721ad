"""The component's entry: the contract's `app` interface over the tenant's `@aggregate` class
in `app.py`. `mysimbdp app build` hands this module to componentize-py; tenants never edit it."""

import dataclasses
import json
import typing

import app as _tenant  # noqa: F401  (the tenant's module registers its aggregate on import)
import mysimbdp
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

_KINDS = {
    bool: "boolean",
    int: "integer",
    float: "double",
    str: "text",
    mysimbdp.Timestamp: "timestamp",
}
_COLUMNS = {
    "boolean": types.Column_Booleans,
    "integer": types.Column_Integers,
    "double": types.Column_Doubles,
    "text": types.Column_Texts,
    "timestamp": types.Column_Timestamps,
}


def _fields(cls) -> typing.List[typing.Tuple[str, str]]:
    """(name, type) of a dataclass's fields, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = _KINDS.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: use int, float, bool, str or Timestamp")
        out.append((f.name, kind))
    return out


def _text(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; non-ASCII stays as it is)."""
    return json.dumps(value, ensure_ascii=False)


def _section(name: str, document: str) -> str:
    """A TOML document as a section of the manifest: its keys under `[name]`, its tables
    under `[name.table]`."""
    out = [f"\n[{name}]"]
    for line in document.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("[["):
            out.append(f"[[{name}.{stripped[2:]}")
        elif stripped.startswith("["):
            out.append(f"[{name}.{stripped[1:]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _manifest(r: mysimbdp.Registered) -> str:
    """The contract's manifest (docs/interfaces.md) for the registered app."""
    if r.event_time[0] == "ingestion":
        event_time = "{ ingestion = true }"
    else:
        event_time = f"{{ field = {_text(r.event_time[1])}, format = {_text(r.event_time[2])} }}"
    window = {
        "tumbling": lambda w: f"{{ tumbling_ms = {w[1]} }}",
        "sliding": lambda w: f"{{ size_ms = {w[1]}, slide_ms = {w[2]} }}",
        "session": lambda w: f"{{ session_gap_ms = {w[1]} }}",
    }[r.window[0]](r.window)

    def fields(cls) -> str:
        return "[" + ", ".join(f"{{ name = {_text(n)}, type = {_text(k)} }}" for n, k in _fields(cls)) + "]"

    lines = [
        f"name = {_text(r.name)}",
        f"version = {_text(r.version)}",
        f"table = {_text(r.table)}",
        f"key = {_text(','.join(r.key))}",
        f"state_version = {int(r.state_version)}",
        f"filter = {'true' if r.filter is not None else 'false'}",
        f"inputs = {fields(r.input)}",
        f"outputs = {fields(r.output)}",
        f"event_time = {event_time}",
        f"window = {window}",
        f"watermark_delay_ms = {int(r.watermark_delay)}",
        f"allowed_lateness_ms = {int(r.allowed_lateness)}",
        f"emit = {{ mode = {_text(r.emit[0])}, interval_ms = {int(r.emit[1])} }}",
    ]
    manifest = "\n".join(lines) + "\n"
    if r.enrich:
        manifest += _section("enrich", r.enrich)
    return manifest


def _describe(error: Exception) -> str:
    """The error and the innermost line of the tenant's code that raised it (read from the
    frames alone: the sandbox has no files, so no source line is looked up)."""
    where, tb = "", error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.endswith(("mysimbdp_app.py", "mysimbdp/__init__.py")):
            where = f" (at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}, in {code.co_name})"
        tb = tb.tb_next
    return f"{type(error).__name__}: {error}{where}"


def _registered() -> mysimbdp.Registered:
    if mysimbdp.REGISTERED is None:
        raise TypeError("app.py declares no app: put @aggregate(...) on its accumulator class")
    return mysimbdp.REGISTERED


def _rows(batch: types.Batch, input_type) -> typing.List[typing.Any]:
    columns = [c.value for c in batch.columns]
    return [input_type(*[col[i] for col in columns]) for i in range(batch.rows)]


# The accumulators by slot number (the platform owns which (key, window) a slot is). Module
# state: componentize-py makes a new `App` for every call.
_SLOTS: typing.Dict[int, typing.Any] = {}


class App(exports.App):
    """The contract's calls, each over `_SLOTS`."""

    def manifest(self) -> str:
        return _manifest(_registered())

    def filter(self, input: types.Batch) -> typing.List[bool]:
        r = _registered()
        return [bool(r.filter(row)) for row in _rows(input, r.input)]

    def accumulate(self, slots: typing.List[int], input: types.Batch) -> None:
        r = _registered()
        try:
            for slot, row in zip(slots, _rows(input, r.input)):
                acc = _SLOTS.get(slot)
                if acc is None:
                    acc = _SLOTS[slot] = r.state()
                acc.add(row)
        except Exception as e:  # the app's own error, returned with where it was raised
            raise Err(_describe(e))

    def merge(self, into: typing.List[int], from_: typing.List[int]) -> None:
        r = _registered()
        for a, b in zip(into, from_):
            other = _SLOTS.pop(b, None) or r.state()
            _SLOTS.setdefault(a, r.state()).merge(other)

    def emit(self, slots: typing.List[int]) -> types.Batch:
        r = _registered()
        fields = _fields(r.output)
        values = [[] for _ in fields]
        for slot in slots:
            out = (_SLOTS.get(slot) or r.state()).finish()
            for i, (name, _) in enumerate(fields):
                values[i].append(getattr(out, name))
        columns = [_COLUMNS[kind](v) for (_, kind), v in zip(fields, values)]
        return types.Batch(rows=len(slots), columns=columns)

    def close(self, slots: typing.List[int]) -> None:
        for slot in slots:
            _SLOTS.pop(slot, None)

    def snapshot(self, slots: typing.List[int]) -> types.States:
        r = _registered()
        offsets, data = [0], bytearray()
        for slot in slots:
            state = dataclasses.asdict(_SLOTS.get(slot) or r.state())
            data += json.dumps(state, separators=(",", ":")).encode()
            offsets.append(len(data))
        return types.States(offsets=offsets, bytes=bytes(data))

    def restore(self, slots: typing.List[int], states: types.States) -> None:
        r = _registered()
        for i, slot in enumerate(slots):
            raw = states.bytes[states.offsets[i]:states.offsets[i + 1]]
            try:
                _SLOTS[slot] = r.state(**json.loads(raw))
            except (ValueError, TypeError) as e:
                raise Err(f"slot {slot}: state not written by this app's state version: {e}")
