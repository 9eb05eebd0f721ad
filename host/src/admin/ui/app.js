// The mysimbdp dashboard: plain ES2020, no build step. It keeps the token in this closure only
// (never in the URL, a cookie or storage), asks the admin API once a second while the tab is
// visible, and draws the selected app's live series with uPlot.
'use strict';

(() => {
  const POLL_MS = 1000;
  const POINTS_KEPT = 300;
  const $ = (id) => document.getElementById(id);

  let token = null;
  let selected = null; // "tenant/app"
  let timer = null;
  let apps = [];
  let previous = null; // the last reading of the selected app, for per-second means
  let series = null;
  let charts = [];

  // --- the admin API -------------------------------------------------------------------------

  /** One request with the token; a refused token signs out. */
  async function api(method, path, body, contentType) {
    const headers = { Authorization: `Bearer ${token}` };
    if (contentType) headers['Content-Type'] = contentType;
    const response = await fetch(path, {
      method, headers, body, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) {
      signOut((data && data.error) || 'the token was refused');
    }
    return { ok: response.ok, status: response.status, data };
  }

  const appPath = (a) => `/apps/${encodeURIComponent(a.tenant)}/${encodeURIComponent(a.app)}`;
  const keyOf = (a) => `${a.tenant}/${a.app}`;

  // --- signing in and out --------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const input = $('token');
    const given = input.value;
    input.value = '';
    $('login-error').textContent = '';
    if (!given) return;
    token = given;
    $('sign-in').disabled = true;
    try {
      const answer = await api('GET', '/apps');
      if (!answer.ok) {
        token = null;
        $('login-error').textContent = `Refused: ${(answer.data && answer.data.error) || answer.status}`;
        return;
      }
      $('login').hidden = true;
      $('dashboard').hidden = false;
      $('logout').hidden = false;
      const who = await api('GET', '/scope');
      $('scope').textContent = who.ok && who.data.scope === 'tenant'
        ? `tenant ${who.data.tenant}`
        : 'operator: all tenants';
      showApps(answer.data);
      schedule(0);
    } catch (error) {
      token = null;
      $('login-error').textContent = `The platform did not answer: ${error}`;
    } finally {
      $('sign-in').disabled = false;
    }
  }

  function signOut(reason) {
    token = null;
    selected = null;
    if (timer) clearTimeout(timer);
    timer = null;
    resetCharts();
    $('dashboard').hidden = true;
    $('detail').hidden = true;
    $('logout').hidden = true;
    $('scope').textContent = '';
    $('login').hidden = false;
    $('login-error').textContent = reason || '';
  }

  // --- polling -------------------------------------------------------------------------------

  function schedule(delay) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  async function tick() {
    timer = null;
    if (!token) return;
    if (!document.hidden) {
      try {
        const list = await api('GET', '/apps');
        if (list.ok) showApps(list.data);
        const app = apps.find((a) => keyOf(a) === selected);
        if (app && token) {
          showApp(app);
          const recent = await api('GET', `${appPath(app)}/recent`);
          if (recent.ok && keyOf(recent.data) === selected) showRecent(recent.data);
        }
        $('clock').textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        $('clock').textContent = `not reachable: ${error}`;
      }
    }
    if (token) schedule(POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && token) schedule(0);
  });

  // --- the list of tenants and apps ----------------------------------------------------------

  function showApps(list) {
    apps = Array.isArray(list) ? list : [];
    if (!selected && apps.length) select(keyOf(apps[0]));
    $('no-apps').hidden = apps.length > 0;
    const byTenant = new Map();
    for (const a of apps) {
      if (!byTenant.has(a.tenant)) byTenant.set(a.tenant, []);
      byTenant.get(a.tenant).push(a);
    }
    const root = $('app-list');
    const fragment = document.createDocumentFragment();
    for (const [tenant, list] of byTenant) {
      const title = document.createElement('h3');
      title.textContent = tenant;
      fragment.append(title);
      const ul = document.createElement('ul');
      for (const a of list) {
        const li = document.createElement('li');
        const button = document.createElement('button');
        button.type = 'button';
        button.dataset.app = keyOf(a);
        button.setAttribute('aria-current', String(keyOf(a) === selected));
        const name = document.createElement('span');
        name.textContent = a.app;
        const state = document.createElement('span');
        state.className = `badge ${a.state}`;
        state.textContent = a.state;
        button.append(name, state);
        button.addEventListener('click', () => { select(keyOf(a)); schedule(0); });
        li.append(button);
        ul.append(li);
      }
      fragment.append(ul);
    }
    root.replaceChildren(fragment);
  }

  function select(key) {
    if (key === selected) return;
    selected = key;
    previous = null;
    resetCharts();
    $('answer').textContent = '';
    $('answer').className = 'answer';
    for (const id of ['history', 'dead-letters', 'results']) {
      $(id).tBodies[0].replaceChildren();
    }
    $('detail').hidden = false;
  }

  // --- one app -------------------------------------------------------------------------------

  const number = (n) => (n == null ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: 1 }));
  /** Dates JavaScript can show: the platform's watermark jumps past them once input ends. */
  const showable = (ms) => ms != null && Math.abs(ms) <= 8.64e15;
  const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

  function when(ms) {
    if (ms == null) return '–';
    if (!showable(ms)) return ms > 0 ? 'end of input' : 'none yet';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function seconds(ms) {
    if (ms == null) return '–';
    const s = ms / 1000;
    if (Math.abs(s) < 120) return `${s.toFixed(1)} s`;
    if (Math.abs(s) < 7200) return `${(s / 60).toFixed(1)} min`;
    if (Math.abs(s) < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }

  /** Mean duration in ms of what was observed between two readings; null when nothing was. */
  function meanMs(now, before, name) {
    const a = now.durations && now.durations[name];
    const b = before && before.durations && before.durations[name];
    if (!a || !b) return null;
    const count = a.count - b.count;
    return count > 0 ? ((a.seconds - b.seconds) / count) * 1000 : null;
  }

  function pluginMeanMs(now, before) {
    if (!before) return null;
    let count = 0;
    let secs = 0;
    for (const name of Object.keys(now.durations || {})) {
      if (!name.startsWith('plugin_')) continue;
      const a = now.durations[name];
      const b = before.durations[name];
      if (!b) continue;
      count += a.count - b.count;
      secs += a.seconds - b.seconds;
    }
    return count > 0 ? (secs / count) * 1000 : null;
  }

  function metric(id, label, value, shown) {
    let cell = $(`m-${id}`);
    if (!cell) {
      const box = document.createElement('div');
      const dt = document.createElement('dt');
      dt.textContent = label;
      cell = document.createElement('dd');
      cell.id = `m-${id}`;
      box.append(dt, cell);
      $('metrics').append(box);
    }
    cell.dataset.value = value == null ? '' : String(value);
    cell.textContent = shown == null ? number(value) : shown;
  }

  function showApp(a) {
    $('app-title').textContent = `${a.tenant} / ${a.app}`;
    const state = $('app-state');
    state.textContent = a.state + (a.caught_up ? ' · caught up' : '');
    state.className = `badge ${a.state}`;
    $('app-version').textContent = `version ${a.version} (state v${a.state_version}, ${a.swaps} swaps)`;
    $('app-stream').textContent = a.stream;
    $('app-delivery').textContent = a.delivery;
    const problems = [a.last_error, ...(a.unreadable || []).map((u) => `cannot read ${u}`)]
      .filter(Boolean);
    $('app-error').hidden = problems.length === 0;
    $('app-error').textContent = problems.join('; ');

    const watermark = a.watermark_ms > 0 && showable(a.watermark_ms) ? a.watermark_ms : null;
    const behindWall = watermark == null ? null : a.now_ms - watermark;
    const behindNewest = watermark != null && a.max_event_ms ? a.max_event_ms - watermark : null;
    const batchMs = meanMs(a, previous, 'batch');
    const pluginMs = pluginMeanMs(a, previous);
    const checkpointAge = a.last_checkpoint_ms ? a.now_ms - a.last_checkpoint_ms : null;

    metric('records_in', 'Records read', a.records_in);
    metric('records_processed', 'Records processed', a.records_processed);
    metric('records_committed', 'Records committed', a.records_committed);
    metric('input_rate', 'Input rate (records/s)', a.input_rate);
    metric('process_rate', 'Process rate (records/s)', a.process_rate);
    metric('lag', 'Lag (records)', a.lag);
    metric('watermark', 'Watermark', a.watermark_ms, a.watermark_ms > 0 ? when(a.watermark_ms) : 'none yet');
    metric('newest_event', 'Newest event time', a.max_event_ms, when(a.max_event_ms));
    metric('behind_wall', 'Watermark behind wall clock', behindWall, seconds(behindWall));
    metric('behind_newest', 'Watermark behind newest event', behindNewest, seconds(behindNewest));
    metric('open_windows', 'Open windows', a.open_windows);
    metric('late', 'Late records', a.late);
    metric('dead_letters', 'Dead letters', a.dead_letters);
    metric('rows_emitted', 'Rows emitted', a.rows_emitted);
    metric('batch_ms', 'Batch duration (ms, last s)', batchMs, batchMs == null ? '–' : batchMs.toFixed(2));
    metric('plugin_ms', 'Plugin call (ms, last s)', pluginMs, pluginMs == null ? '–' : pluginMs.toFixed(3));
    metric('checkpoint_age', 'Last checkpoint', checkpointAge, checkpointAge == null ? 'none yet' : `${seconds(checkpointAge)} ago`);
    metric('checkpoints', 'Checkpoints', a.checkpoints);
    metric('failures', 'Failures survived', a.failures);
    metric('plugin_failures', 'Plugin failures', a.plugin_failures);
    metric('sink_errors', 'Sink errors', a.sink_errors);
    metric('over_quota', 'Over quota', a.over_quota);

    if (previous && previous.now_ms === a.now_ms) return;
    const t = a.now_ms / 1000;
    push(series.rates, t, [a.input_rate, a.process_rate]);
    push(series.lag, t, [a.lag]);
    push(series.delay, t, [behindWall == null ? null : behindWall / 1000, behindNewest == null ? null : behindNewest / 1000]);
    push(series.durations, t, [batchMs, pluginMs]);
    previous = a;
    drawCharts();
  }

  // --- charts --------------------------------------------------------------------------------

  const CHARTS = [
    // Processed per second of busy time runs far above the input rate: its own axis, on the right.
    ['rates', 'chart-rates', [['read/s', '#2f6fde'], ['processed/busy s', '#1b7f3b', 'busy']]],
    ['lag', 'chart-lag', [['lag', '#b3261e']]],
    ['delay', 'chart-delay', [['behind wall clock', '#8a4fd6'], ['behind newest event', '#d68a1c']]],
    ['durations', 'chart-durations', [['batch', '#2f6fde'], ['plugin call', '#d68a1c']]],
  ];

  function resetCharts() {
    for (const chart of charts) chart.destroy();
    charts = [];
    series = {};
    for (const [name, , lines] of CHARTS) series[name] = [[], ...lines.map(() => [])];
  }
  resetCharts();

  function push(data, t, values) {
    data[0].push(t);
    values.forEach((v, i) => data[i + 1].push(v == null || Number.isNaN(v) ? null : v));
    if (data[0].length > POINTS_KEPT) for (const column of data) column.shift();
  }

  function chartSize(element) {
    const width = Math.max(200, element.clientWidth || element.parentElement.clientWidth || 300);
    return { width, height: 170 };
  }

  function drawCharts() {
    if (typeof uPlot === 'undefined') return;
    if (!charts.length) {
      for (const [name, id, lines] of CHARTS) {
        const element = $(id);
        element.replaceChildren();
        const options = {
          ...chartSize(element),
          scales: { x: { time: true } },
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
          series: [{}, ...lines.map(([label, stroke, scale]) => ({
            label, stroke, width: 2, spanGaps: false, scale: scale || 'y',
          }))],
          axes: [{}, { size: 56, values: (u, ticks) => ticks.map((v) => compact.format(v)) }],
        };
        for (const [, stroke, scale] of lines) {
          if (scale) {
            options.axes.push({
              scale, side: 1, size: 56, stroke, grid: { show: false },
              values: (u, ticks) => ticks.map((v) => compact.format(v)),
            });
          }
        }
        charts.push(new uPlot(options, series[name], element));
      }
      return;
    }
    CHARTS.forEach(([name], i) => charts[i].setData(series[name]));
  }

  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      CHARTS.forEach(([, id], i) => charts[i] && charts[i].setSize(chartSize($(id))));
    }, 100);
  });

  // --- results, dead letters, history --------------------------------------------------------

  function row(cells) {
    const tr = document.createElement('tr');
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }

  function showRecent(recent) {
    $('history').tBodies[0].replaceChildren(...recent.history.map((c) => {
      const tr = row([
        [when(c.at_ms)],
        [c.action],
        [c.from || '–'],
        [c.to || '–'],
        [c.pause_ms == null ? '–' : `${c.pause_ms.toFixed(1)} ms`, 'num'],
        [c.outcome, 'wrap'],
      ]);
      tr.dataset.action = c.action;
      tr.dataset.ok = String(c.ok);
      if (!c.ok) tr.className = 'error';
      return tr;
    }));
    $('dead-letters').tBodies[0].replaceChildren(...recent.dead_letters.map((d) => row([
      [when(d.at_ms)], [d.reason, 'wrap'], [d.source], [d.payload, 'wrap'],
    ])));
    const table = $('results');
    const columns = [];
    for (const r of recent.results.slice(0, 10)) {
      for (const name of Object.keys(r.row)) if (!columns.includes(name)) columns.push(name);
    }
    const head = document.createElement('tr');
    for (const name of columns) {
      const th = document.createElement('th');
      th.textContent = name;
      head.append(th);
    }
    table.tHead.replaceChildren(head);
    table.tBodies[0].replaceChildren(...recent.results.map((r) => row(columns.map((name) => {
      const v = r.row[name];
      return [v == null ? '' : typeof v === 'number' ? number(v) : String(v), typeof v === 'number' ? 'num' : ''];
    }))));
  }

  // --- actions -------------------------------------------------------------------------------

  function showAnswer(what, answer) {
    const out = $('answer');
    const data = answer.data || {};
    const text = data.result || data.error || (answer.ok ? 'done' : `HTTP ${answer.status}`);
    out.textContent = `${what}: ${answer.status} · ${text}`;
    out.className = `answer ${answer.ok ? 'ok' : 'refused'}`;
  }

  async function act(what, question, request) {
    const app = apps.find((a) => keyOf(a) === selected);
    if (!app || !window.confirm(question(app))) return;
    const buttons = document.querySelectorAll('#detail button');
    buttons.forEach((b) => { b.disabled = true; });
    $('answer').textContent = `${what}: waiting for the platform…`;
    $('answer').className = 'answer';
    try {
      showAnswer(what, await request(app));
    } catch (error) {
      $('answer').textContent = `${what}: the platform did not answer: ${error}`;
      $('answer').className = 'answer refused';
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      schedule(0);
    }
  }

  $('drain').addEventListener('click', () => act(
    'drain',
    (a) => `Drain ${a.tenant}/${a.app}? It processes its input up to the current end, then closes every window.`,
    (a) => api('POST', `${appPath(a)}/drain`),
  ));

  $('rollback').addEventListener('click', () => {
    const reset = $('rollback-reset').checked;
    act(
      'rollback',
      (a) => `Roll ${a.tenant}/${a.app} back to the version before ${a.version}${reset ? ', starting every window fresh' : ''}?`,
      (a) => api('POST', `${appPath(a)}/rollback`, JSON.stringify({ reset_state: reset }), 'application/json'),
    );
  });

  $('deploy-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const file = $('deploy-file').files[0];
    if (!file) return;
    const reset = $('deploy-reset').checked;
    const stream = $('deploy-stream').value.trim();
    act(
      'deploy',
      (a) => `Deploy ${file.name} (${file.size.toLocaleString('en-US')} bytes) for tenant ${a.tenant}${reset ? ', starting every window fresh' : ''}?`,
      (a) => {
        const query = new URLSearchParams({ reset_state: String(reset) });
        if (stream) query.set('stream', stream);
        return api('POST', `/apps/${encodeURIComponent(a.tenant)}/deploy?${query}`, file, 'application/wasm');
      },
    );
  });

  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', () => signOut(''));
})();
