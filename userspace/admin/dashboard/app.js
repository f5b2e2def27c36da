// The /logs dashboard: the call table with its filters and the detail of one record, the
// live tail, charts, the kernel view. Everything from the daemon's own API with the login
// cookie; every value is put in the page with textContent, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
// sidecar: set on the fleet's shared store (logs.postgres), empty on a sidecar's own.
const COLUMNS = ['ts', 'sidecar', 'type', 'key', 'team', 'server', 'target', 'decision', 'status',
	'latency', 'cost'];
const LIVE_MAX = 500;

function el(tag, text, cls) {
	const e = document.createElement(tag);
	if (text !== undefined && text !== null)
		e.textContent = String(text);
	if (cls)
		e.className = cls;
	return e;
}

function svg(tag, attrs) {
	const e = document.createElementNS(SVG, tag);
	for (const [k, v] of Object.entries(attrs || {}))
		e.setAttribute(k, String(v));
	return e;
}

function status(text, isError) {
	const s = $('status');
	s.textContent = text || '';
	s.classList.toggle('error', !!isError);
}

async function api(path) {
	const res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
	if (res.status === 401) {
		location.assign('/logs');
		throw new Error('signed out');
	}
	const body = await res.json().catch(() => null);
	if (!res.ok) {
		const e = body && body.error;
		const msg = e && typeof e === 'object' ? e.message + (e.parameter ? ` (${e.parameter})` : '')
			: (e || `HTTP ${res.status}`);
		throw new Error(msg);
	}
	return body;
}

function latencyMs(r) {
	if (typeof r.latency_us === 'number')
		return (r.latency_us / 1000).toFixed(2);
	if (typeof r.latency_ms === 'number')
		return String(r.latency_ms);
	return '';
}

function money(micros) {
	return typeof micros === 'number' ? '$' + (micros / 1e6).toFixed(6).replace(/0{1,4}$/, '') : '';
}

function cellText(r, col) {
	switch (col) {
	case 'latency': return latencyMs(r);
	case 'cost': return money(r.cost_micros);
	case 'target': return r.target ?? r.action ?? r.path ?? r.reason ?? '';
	default: return r[col] ?? '';
	}
}

// The store's id: "id" in pages; a record from the live tail carries it as "seq".
function recordId(r) {
	return r.id ?? r.seq;
}

function recordRow(r) {
	const tr = document.createElement('tr');
	if (r.decision)
		tr.classList.add(String(r.decision).replace(/[^a-z_]/g, ''));
	if (recordId(r) !== undefined)
		tr.dataset.id = String(recordId(r));
	for (const col of COLUMNS) {
		const td = el('td', cellText(r, col), col);
		td.title = td.textContent;
		tr.appendChild(td);
	}
	tr.addEventListener('click', () => showDetail(r));
	return tr;
}

// ---- calls ------------------------------------------------------------------------------

let cursor = null;

function filterParams() {
	const p = new URLSearchParams();
	for (const [k, v] of new FormData($('filters'))) {
		const s = String(v).trim();
		if (!s)
			continue;
		if (k === 'since' || k === 'until') {
			const d = new Date(s);
			if (!isNaN(d))
				p.set(k, d.toISOString());
		} else {
			p.set(k, s);
		}
	}
	return p;
}

async function loadCalls(more) {
	const p = filterParams();
	if (more && cursor)
		p.set('cursor', cursor);
	try {
		const body = await api('/api/logs?' + p.toString());
		const tbody = $('calls-table').tBodies[0];
		if (!more)
			tbody.replaceChildren();
		for (const r of body.records)
			tbody.appendChild(recordRow(r));
		cursor = body.next_cursor;
		$('more').hidden = !cursor;
		status(`${tbody.rows.length} records` + (cursor ? ' (more below)' : ''));
	} catch (e) {
		status(e.message, true);
	}
}

function showDetail(r) {
	$('detail').hidden = false;
	const id = recordId(r);
	$('detail-id').textContent = id !== undefined ? '#' + id : '';
	const dl = $('detail-fields');
	dl.replaceChildren();
	for (const [k, v] of Object.entries(r)) {
		if (v !== null && typeof v === 'object')
			continue;
		dl.appendChild(el('dt', k));
		dl.appendChild(el('dd', v));
	}
	$('detail-json').textContent = JSON.stringify(r, null, 2);
	if (id !== undefined) {
		// The stored record, in case the row came from the live tail.
		api('/api/logs/' + encodeURIComponent(id)).then((full) => {
			$('detail-json').textContent = JSON.stringify(full, null, 2);
		}).catch(() => {});
	}
}

// ---- live tail ------------------------------------------------------------------------------

let source = null;
let paused = false;
let liveCount = 0;

function startLive() {
	if (source)
		return;
	source = new EventSource('/api/logs/stream');
	source.onopen = () => { $('live-state').textContent = 'live'; };
	source.onerror = () => { $('live-state').textContent = 'reconnecting…'; };
	source.onmessage = (ev) => {
		let r;
		try { r = JSON.parse(ev.data); } catch { return; }
		liveCount++;
		$('live-count').textContent = String(liveCount);
		if (paused)
			return;
		const tbody = $('live-table').tBodies[0];
		tbody.insertBefore(recordRow(r), tbody.firstChild);
		while (tbody.rows.length > LIVE_MAX)
			tbody.deleteRow(-1);
	};
}

// ---- charts ---------------------------------------------------------------------------------

// Counts are 0 in a bucket without calls (zero: true); a latency there is unknown, not 0.
const CHARTS = [
	{ id: 'chart-calls', value: (b) => b.calls, zero: true },
	{ id: 'chart-denied', value: (b) => b.denied, zero: true },
	{ id: 'chart-p50', value: (b) => b.p50_ms },
	{ id: 'chart-p99', value: (b) => b.p99_ms },
	{ id: 'chart-cost', value: (b) => b.cost_micros / 1e6, zero: true },
];

// Every bucket from t0 to t1, the missing ones as zeros.
function zeroFilled(pts, t0, t1, bucketMs) {
	const have = new Map(pts.map((b) => [b.t, b]));
	const out = [];
	for (let t = Math.floor(t0 / bucketMs) * bucketMs; t <= t1; t += bucketMs)
		out.push(have.get(t) ?? { t, calls: 0, denied: 0, errors: 0, cost_micros: 0 });
	return out;
}

function timeLabel(t, span) {
	const d = new Date(t);
	return span <= 86400000 ? d.toLocaleTimeString() : d.toLocaleString();
}

function drawChart(box, series0, t0, t1, bucketMs, chart) {
	const value = chart.value;
	const series = new Map([...series0].map(([g, pts]) =>
		[g, chart.zero ? zeroFilled(pts, t0, t1, bucketMs) : pts]));
	const W = 400, H = 160, L = 40, B = 18;
	let max = 0;
	for (const pts of series.values())
		for (const b of pts)
			max = Math.max(max, value(b));
	if (!(max > 0))
		max = 1;
	const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
	s.appendChild(svg('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }));
	s.appendChild(svg('line', { x1: L, y1: 0, x2: L, y2: H - B, class: 'axis' }));
	const top = svg('text', { x: 2, y: 10 });
	top.textContent = max >= 100 ? max.toFixed(0) : String(+max.toPrecision(3));
	s.appendChild(top);
	const zero = svg('text', { x: 2, y: H - B });
	zero.textContent = '0';
	s.appendChild(zero);
	for (const [t, x, anchor] of [[t0, L, 'start'], [t1, W, 'end']]) {
		const lab = svg('text', { x, y: H - 4, 'text-anchor': anchor });
		lab.textContent = timeLabel(t, t1 - t0);
		s.appendChild(lab);
	}
	const span = Math.max(1, t1 - t0);
	let i = 0;
	for (const [, pts] of series) {
		const xy = pts.map((b) => {
			const x = L + ((b.t - t0) / span) * (W - L);
			const y = (H - B) - (value(b) / max) * (H - B - 4);
			return `${x.toFixed(1)},${y.toFixed(1)}`;
		});
		if (xy.length === 1)            // one bucket: a short flat line, still visible
			xy.push(xy[0].replace(/^[\d.]+/, (x) => (Math.min(W, +x + 6)).toFixed(1)));
		s.appendChild(svg('polyline', { points: xy.join(' '), class: 'c' + (i % 8) }));
		pts.forEach((b, k) => {
			if (chart.zero && !value(b))
				return;         // dots only where something happened
			const [cx, cy] = xy[k].split(',');
			s.appendChild(svg('circle', { cx, cy, r: 2.5, class: 'c' + (i % 8) }));
		});
		i++;
	}
	box.replaceChildren(s);
}

async function loadCharts() {
	const range = Number($('chart-range').value);
	const until = Date.now();
	const since = until - range * 1000;
	const bucket = Math.max(60, Math.round(range / 60));
	const p = new URLSearchParams({ group_by: $('chart-group').value, bucket: String(bucket),
		since: String(since), until: String(until) });
	try {
		const body = await api('/api/logs/stats?' + p.toString());
		const series = new Map();
		for (const b of body.buckets) {
			if (!series.has(b.group))
				series.set(b.group, []);
			series.get(b.group).push(b);
		}
		for (const c of CHARTS)
			drawChart($(c.id), series, since, until, bucket * 1000, c);
		const legend = $('chart-legend');
		legend.replaceChildren();
		let i = 0;
		for (const g of series.keys()) {
			const li = el('li');
			li.appendChild(el('span', null, 'swatch c' + (i++ % 8)));
			li.appendChild(document.createTextNode(g === '' ? '(none)' : g));
			legend.appendChild(li);
		}
		status(`${body.buckets.length} buckets of ${bucket} s`);
	} catch (e) {
		status(e.message, true);
	}
}

// ---- kernel ---------------------------------------------------------------------------------

function fillTable(id, rows, cols) {
	const tbody = $(id).tBodies[0];
	tbody.replaceChildren();
	for (const r of rows) {
		const tr = document.createElement('tr');
		for (const c of cols)
			tr.appendChild(el('td', typeof c === 'function' ? c(r) : (r[c] ?? '')));
		tbody.appendChild(tr);
	}
}

async function loadKernel() {
	try {
		const k = await api('/api/kernel');
		if (!k.enforcement) {
			$('kernel-state').textContent = 'Kernel enforcement is off in this daemon.';
			fillTable('kernel-enrolled', [], []);
			fillTable('kernel-protected', [], []);
			fillTable('kernel-denials', [], []);
			return;
		}
		$('kernel-state').textContent = `Enforcement on; refused connections get ${k.deny_errno}` +
			(k.hooks ? `; hooks: ${k.hooks.join(', ')}` : '');
		fillTable('kernel-enrolled', k.enrolled || [], [(r) => r.cgroup ?? '(gone)', 'cgroup_id', 'mode']);
		fillTable('kernel-protected', k.protected || [], ['dest', 'rule_id']);
		fillTable('kernel-denials', k.recent_denials || [], ['ts', (r) => r.cgroup ?? r.cgroup_id ?? '',
			(r) => [r.comm, r.pid].filter((x) => x !== undefined).join(' '),
			(r) => [r.destination ?? r.dest ?? r.path, r.port].filter((x) => x !== undefined && x !== null).join(':'),
			'reason']);
	} catch (e) {
		status(e.message, true);
	}
}

// ---- views ----------------------------------------------------------------------------------

const LOADERS = { calls: () => loadCalls(false), live: startLive, charts: loadCharts, kernel: loadKernel };

function show(view) {
	for (const b of document.querySelectorAll('button.tab'))
		b.classList.toggle('active', b.dataset.view === view);
	for (const s of document.querySelectorAll('section.view'))
		s.hidden = s.id !== 'view-' + view;
	status('');
	LOADERS[view]();
}

document.addEventListener('DOMContentLoaded', () => {
	for (const b of document.querySelectorAll('button.tab'))
		b.addEventListener('click', () => show(b.dataset.view));
	$('filters').addEventListener('submit', (e) => { e.preventDefault(); loadCalls(false); });
	$('clear-filters').addEventListener('click', () => { $('filters').reset(); loadCalls(false); });
	$('more').addEventListener('click', () => loadCalls(true));
	$('detail-close').addEventListener('click', () => { $('detail').hidden = true; });
	$('chart-form').addEventListener('submit', (e) => { e.preventDefault(); loadCharts(); });
	$('live-pause').addEventListener('click', () => {
		paused = !paused;
		$('live-pause').textContent = paused ? 'Resume' : 'Pause';
	});
	$('live-clear').addEventListener('click', () => {
		$('live-table').tBodies[0].replaceChildren();
		liveCount = 0;
		$('live-count').textContent = '0';
	});
	startLive();                    // the tail collects from the start, whatever view is shown
	loadCalls(false);
});
