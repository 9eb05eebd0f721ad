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
    bool: types.FieldType.BOOLEAN,
    int: types.FieldType.INTEGER,
    float: types.FieldType.DOUBLE,
    str: types.FieldType.TEXT,
    mysimbdp.Timestamp: types.FieldType.TIMESTAMP,
}
_COLUMNS = {
    types.FieldType.BOOLEAN: types.Column_Booleans,
    types.FieldType.INTEGER: types.Column_Integers,
    types.FieldType.DOUBLE: types.Column_Doubles,
    types.FieldType.TEXT: types.Column_Texts,
    types.FieldType.TIMESTAMP: types.Column_Timestamps,
}
_FORMATS = {
    "date": types.TimeFormat.DATE,
    "rfc3339": types.TimeFormat.RFC3339,
    "epoch-millis": types.TimeFormat.EPOCH_MILLIS,
    "epoch-seconds": types.TimeFormat.EPOCH_SECONDS,
}
_EMIT = {
    "on-update": types.EmitMode.ON_UPDATE,
    "on-close": types.EmitMode.ON_CLOSE,
    "both": types.EmitMode.BOTH,
}


def _fields(cls) -> typing.List[types.Field]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = _KINDS.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: use int, float, bool, str or Timestamp")
        out.append(types.Field(name=f.name, kind=kind))
    return out


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

    def describe(self) -> types.AppInfo:
        r = _registered()
        if r.event_time[0] == "ingestion":
            event_time = types.EventTime_Ingestion()
        else:
            event_time = types.EventTime_Field(types.TimeField(r.event_time[1], _FORMATS[r.event_time[2]]))
        if r.window[0] == "tumbling":
            window = types.Window_Tumbling(r.window[1])
        else:
            window = types.Window_Sliding(types.Sliding(r.window[1], r.window[2]))
        return types.AppInfo(
            name=r.name, version=r.version, table=r.table, inputs=_fields(r.input),
            key_field=r.key, event_time=event_time, window=window,
            watermark_delay_ms=r.watermark_delay, allowed_lateness_ms=r.allowed_lateness,
            emit=_EMIT[r.emit[0]], update_interval_ms=r.emit[1], outputs=_fields(r.output),
            state_version=r.state_version, has_filter=r.filter is not None)

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
            for i, f in enumerate(fields):
                values[i].append(getattr(out, f.name))
        columns = [_COLUMNS[f.kind](v) for f, v in zip(fields, values)]
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
