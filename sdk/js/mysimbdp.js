// Write a mysimbdp tenant app in JavaScript: declare the fields you read and the columns you
// write with their types, a fresh state, and add / merge / finish, in one `aggregate({...})`.
// The platform decodes, keys, windows, checkpoints and stores; this SDK snapshots and restores
// the state (plain JSON) and speaks the contract `mysimbdp:tenant@0.2.0` as `export const app`.
// `mysimbdp app build` puts this file before the tenant's app.js in one module; integers reach
// the app as JavaScript numbers (exact up to 2^53).

export const boolean = "boolean";
export const integer = "integer";
export const double = "double";
export const text = "text";
export const timestamp = "timestamp";

export const seconds = (n) => Math.round(n * 1000);
export const minutes = (n) => seconds(n * 60);
export const hours = (n) => minutes(n * 60);
export const days = (n) => hours(n * 24);

// A TOML basic string (JSON's escapes are TOML's).
const toml = (text) => JSON.stringify(String(text));
const whole = (n) => String(Math.trunc(Number(n)));

// Settings are written as the manifest's values (docs/interfaces.md).
export const date = (name) => `{ field = ${toml(name)}, format = "date" }`;
export const rfc3339 = (name) => `{ field = ${toml(name)}, format = "rfc3339" }`;
export const epochMillis = (name) => `{ field = ${toml(name)}, format = "epoch-millis" }`;
export const epochSeconds = (name) => `{ field = ${toml(name)}, format = "epoch-seconds" }`;
export const ingestion = () => "{ ingestion = true }";

export const tumbling = (size) => `{ tumbling_ms = ${whole(size)} }`;
export const sliding = (size, slide) => `{ size_ms = ${whole(size)}, slide_ms = ${whole(slide)} }`;
/** A window per key that closes after `gap` ms without records for that key. */
export const session = (gap) => `{ session_gap_ms = ${whole(gap)} }`;

export const onUpdate = (interval) => ({ mode: "on-update", interval });
export const onClose = () => ({ mode: "on-close", interval: 0 });
export const both = (interval) => ({ mode: "both", interval });

let declared = null;

/** Declares the app; call it once. */
export function aggregate(spec) {
  for (const key of ["name", "key", "eventTime", "window", "emit", "input", "output", "state", "add", "merge", "finish"]) {
    if (spec[key] === undefined) throw new Error(`aggregate({...}) needs \`${key}\``);
  }
  declared = spec;
}

const slots = new Map();

function app_() {
  if (declared === null) throw new Error("app.js declares no app: call aggregate({...})");
  return declared;
}

const fields = (types) =>
  `[${Object.entries(types).map(([name, kind]) => `{ name = ${toml(name)}, type = ${toml(kind)} }`).join(", ")}]`;

// A TOML document as a section of the manifest: its keys under `[name]`, its tables under
// `[name.table]`.
function section(name, document) {
  const lines = String(document).split("\n").map((line) => {
    const t = line.trimStart();
    if (t.startsWith("[[")) return `[[${name}.${t.slice(2)}`;
    if (t.startsWith("[")) return `[${name}.${t.slice(1)}`;
    return line;
  });
  return `\n[${name}]\n${lines.join("\n")}\n`;
}

function rows(batch) {
  const spec = app_();
  const names = Object.keys(spec.input);
  const out = [];
  for (let i = 0; i < batch.rows; i++) {
    const row = {};
    names.forEach((name, c) => {
      const v = batch.columns[c].val[i];
      row[name] = typeof v === "bigint" ? Number(v) : v;
    });
    out.push(row);
  }
  return out;
}

function stateOf(slot) {
  let s = slots.get(slot);
  if (s === undefined) {
    s = app_().state();
    slots.set(slot, s);
  }
  return s;
}

function column(kind, values) {
  switch (kind) {
    case "boolean": return { tag: "booleans", val: values.map(Boolean) };
    case "integer": return { tag: "integers", val: BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))) };
    case "double": return { tag: "doubles", val: Float64Array.from(values, Number) };
    case "text": return { tag: "texts", val: values.map(String) };
    case "timestamp": return { tag: "timestamps", val: BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))) };
    default: throw new Error(`output type \`${kind}\`: use boolean, integer, double, text or timestamp`);
  }
}

// The error and the innermost frame of the tenant's code (`app.js` follows this SDK in one
// module, so its lines are counted from APP_LINE, which `app build` sets).
function describe(e) {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  const frame = String((e && e.stack) || "").split("\n").find((l) => /:\d+:\d+/.test(l));
  if (!frame) return text;
  const m = frame.match(/^(.*)@.*:(\d+):(\d+)$/);
  if (!m) return `${text} (at ${frame.trim()})`;
  const line = Number(m[2]) - (globalThis.__mysimbdpAppLine ?? 0);
  return `${text} (at app.js:${line}, in ${m[1] || "?"})`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const app = {
  manifest() {
    const s = app_();
    const key = Array.isArray(s.key) ? s.key.join(",") : s.key;
    const lines = [
      `name = ${toml(s.name)}`,
      `version = ${toml(s.version ?? "1.0.0")}`,
      `table = ${toml(s.table ?? s.name.replaceAll("-", "_"))}`,
      `key = ${toml(key)}`,
      `state_version = ${whole(s.stateVersion ?? 1)}`,
      `filter = ${typeof s.filter === "function"}`,
      `inputs = ${fields(s.input)}`,
      `outputs = ${fields(s.output)}`,
      `event_time = ${s.eventTime}`,
      `window = ${s.window}`,
      `watermark_delay_ms = ${whole(s.watermarkDelay ?? 0)}`,
      `allowed_lateness_ms = ${whole(s.allowedLateness ?? 0)}`,
      `emit = { mode = ${toml(s.emit.mode)}, interval_ms = ${whole(s.emit.interval)} }`,
    ];
    let manifest = `${lines.join("\n")}\n`;
    if (s.enrich) manifest += section("enrich", s.enrich);
    return manifest;
  },
  filter(batch) {
    const s = app_();
    return rows(batch).map((r) => Boolean(s.filter(r)));
  },
  accumulate(slotList, batch) {
    const s = app_();
    try {
      rows(batch).forEach((r, i) => s.add(stateOf(slotList[i]), r));
    } catch (e) {
      // A string is the contract's error: the app's own message, with where it was thrown.
      throw describe(e);
    }
  },
  merge(into, from) {
    const s = app_();
    into.forEach((slot, i) => {
      const other = slots.get(from[i]) ?? s.state();
      slots.delete(from[i]);
      s.merge(stateOf(slot), other);
    });
  },
  emit(slotList) {
    const s = app_();
    const outs = Array.from(slotList, (slot) => s.finish(stateOf(slot)));
    const columns = Object.entries(s.output).map(([name, kind]) => column(kind, outs.map((o) => o[name])));
    return { rows: slotList.length, columns };
  },
  close(slotList) {
    for (const slot of slotList) slots.delete(slot);
  },
  snapshot(slotList) {
    const offsets = [0];
    const parts = [];
    let total = 0;
    for (const slot of slotList) {
      const bytes = encoder.encode(JSON.stringify(stateOf(slot)));
      parts.push(bytes);
      total += bytes.length;
      offsets.push(total);
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return { offsets: Uint32Array.from(offsets), bytes };
  },
  restore(slotList, states) {
    slotList.forEach((slot, i) => {
      const raw = states.bytes.subarray(states.offsets[i], states.offsets[i + 1]);
      try {
        slots.set(slot, JSON.parse(decoder.decode(raw)));
      } catch (e) {
        throw `slot ${slot}: state not written by this app's state version: ${e}`;
      }
    });
  },
};
