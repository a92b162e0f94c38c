/**
 * The admin dashboard page (`GET /admin/dashboard`), embedded as strings so it ships in `dist/`
 * with the compiled code. Self-contained: no external script, style, font or image; the route
 * allows exactly this style and this script by their SHA-256 in its content-security-policy.
 *
 * The script never builds HTML from data: every value from the API goes in through
 * `textContent` or an attribute that is not markup.
 */

/** Seconds of traffic the share column is computed over (the script's SHARE_WINDOW polls). */
const SHARE_WINDOW_S = 10

export const DASHBOARD_STYLE = String.raw`
:root {
  --bg: #f4f6f9; --card: #fff; --text: #17212b; --muted: #667382; --border: #e2e7ee; --soft: #f7f9fb;
  --accent: #2563eb; --accent-soft: rgba(37, 99, 235, .12);
  --ok: #15803d; --ok-bg: #dcfce7; --bad: #b91c1c; --bad-bg: #fee2e2;
  --warn: #a16207; --warn-bg: #fef3c7; --idle: #475569; --idle-bg: #e2e8f0;
  --limit: #c2410c; --limit-soft: rgba(194, 65, 12, .12);
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f141a; --card: #171e26; --text: #e6ebf0; --muted: #93a0ae; --border: #26313d; --soft: #1c252f;
    --accent: #60a5fa; --accent-soft: rgba(96, 165, 250, .16);
    --ok: #4ade80; --ok-bg: #14351f; --bad: #f87171; --bad-bg: #3b1818;
    --warn: #fbbf24; --warn-bg: #3a2c0c; --idle: #cbd5e1; --idle-bg: #2a3441;
    --limit: #fb923c; --limit-soft: rgba(251, 146, 60, .16);
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--text); }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.num { font-variant-numeric: tabular-nums; }
[hidden] { display: none !important; }
header.top {
  display: flex; align-items: center; justify-content: space-between; gap: 16px; flex-wrap: wrap;
  padding: 14px 28px; background: var(--card); border-bottom: 1px solid var(--border);
}
.brand { display: flex; align-items: center; gap: 10px; }
.brand svg { width: 26px; height: 26px; color: var(--accent); }
.brand h1 { margin: 0; font-size: 18px; font-weight: 650; letter-spacing: -.01em; }
.brand .sub { color: var(--muted); }
.conn { display: flex; align-items: center; gap: 10px; color: var(--muted); font-size: 13px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--idle); flex: none; }
.dot.up { background: var(--ok); box-shadow: 0 0 0 3px var(--ok-bg); }
.dot.down { background: var(--bad); box-shadow: 0 0 0 3px var(--bad-bg); }
.dot.wait { background: var(--warn); box-shadow: 0 0 0 3px var(--warn-bg); }
main { max-width: 1240px; margin: 0 auto; padding: 22px 28px 40px; display: grid; gap: 18px; }
.card { background: var(--card); border: 1px solid var(--border); border-radius: 10px; padding: 16px 18px; }
h2 { margin: 0; font-size: 15px; font-weight: 620; }
.card-head { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; margin-bottom: 10px; }
.muted { color: var(--muted); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; font-weight: 600; }
.stat .value { font-size: 26px; font-weight: 640; margin-top: 4px; font-variant-numeric: tabular-nums; letter-spacing: -.01em; }
.stat .value small { font-size: 13px; font-weight: 500; color: var(--muted); margin-left: 3px; }
.stat .sub { color: var(--muted); font-size: 12px; margin-top: 2px; font-variant-numeric: tabular-nums; }
.stat.wide { grid-column: span 2; }
.lat { display: flex; gap: 22px; }
.lat div span { display: block; color: var(--muted); font-size: 11px; font-weight: 600; }
.lat div b { font-size: 22px; font-weight: 640; font-variant-numeric: tabular-nums; }
.lat div b small { font-size: 12px; font-weight: 500; color: var(--muted); margin-left: 2px; }
.meta { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 18px; color: var(--muted); font-size: 13px; }
.chips { display: inline-flex; flex-wrap: wrap; gap: 6px; }
.chip { border: 1px solid var(--border); background: var(--soft); border-radius: 999px; padding: 1px 9px; font-size: 12px; color: var(--text); font-variant-numeric: tabular-nums; }
.chip.s2 { border-color: var(--ok-bg); } .chip.s4 { border-color: var(--warn-bg); } .chip.s5 { border-color: var(--bad-bg); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 14px; }
figure.chart { margin: 0; }
figure.chart figcaption { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 8px; }
figure.chart figcaption b { font-size: 18px; font-variant-numeric: tabular-nums; }
.plot { position: relative; height: 130px; }
.plot svg { position: absolute; inset: 0; width: 100%; height: 100%; overflow: visible; }
.plot .grid line { stroke: var(--border); stroke-width: 1; vector-effect: non-scaling-stroke; }
.plot .line { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
.plot .area { stroke: none; }
.rps .line { stroke: var(--accent); } .rps .area { fill: var(--accent-soft); }
.r429 .line { stroke: var(--limit); } .r429 .area { fill: var(--limit-soft); }
.axis { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px; margin-top: 4px; }
.ymax { position: absolute; top: -2px; left: 4px; font-size: 11px; color: var(--muted); background: var(--card); padding: 0 3px; border-radius: 3px; }
.table-wrap { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; padding: 8px 10px; border-bottom: 1px solid var(--border); white-space: nowrap; }
td { padding: 10px; border-bottom: 1px solid var(--border); vertical-align: middle; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:hover td { background: var(--soft); }
tr.off td:not(.actions) { opacity: .6; }
th.n, td.n { text-align: right; font-variant-numeric: tabular-nums; }
.srv-name { font-weight: 600; }
.srv-url { color: var(--muted); font-size: 12px; word-break: break-all; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; text-transform: capitalize; }
.badge.healthy { color: var(--ok); background: var(--ok-bg); }
.badge.unhealthy { color: var(--bad); background: var(--bad-bg); }
.badge.draining { color: var(--warn); background: var(--warn-bg); }
.badge.unknown { color: var(--idle); background: var(--idle-bg); }
.share { display: flex; align-items: center; gap: 8px; justify-content: flex-end; }
.bar { width: 70px; height: 6px; border-radius: 3px; background: var(--idle-bg); overflow: hidden; }
.bar i { display: block; height: 100%; width: 0; background: var(--accent); transition: width .4s; }
.check small { display: block; color: var(--muted); font-size: 11px; }
.ok-text { color: var(--ok); } .bad-text { color: var(--bad); }
.weight { display: flex; align-items: center; gap: 6px; white-space: nowrap; }
.weight b { min-width: 2.2em; font-variant-numeric: tabular-nums; }
.weight input { width: 78px; }
.actions { white-space: nowrap; text-align: right; }
.actions button + button { margin-left: 6px; }
input {
  font: inherit; color: var(--text); background: var(--card); border: 1px solid var(--border);
  border-radius: 6px; padding: 6px 8px; min-width: 0;
}
input:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }
button {
  font: inherit; font-size: 13px; font-weight: 560; color: var(--text); background: var(--card);
  border: 1px solid var(--border); border-radius: 6px; padding: 5px 11px; cursor: pointer;
}
button:hover:not(:disabled) { background: var(--soft); border-color: var(--muted); }
button:disabled { opacity: .45; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover:not(:disabled) { filter: brightness(1.08); background: var(--accent); }
button.danger { color: var(--bad); }
button.armed { background: var(--bad); border-color: var(--bad); color: #fff; }
button.small { padding: 4px 9px; font-size: 12px; }
button.link { border: none; background: none; color: var(--accent); padding: 2px 4px; }
form.add { display: grid; grid-template-columns: minmax(220px, 3fr) minmax(90px, 1fr) minmax(140px, 2fr) auto; gap: 12px; align-items: end; }
form.add label, form.auth label { display: grid; gap: 4px; font-size: 12px; font-weight: 600; color: var(--muted); }
.hint { margin: 10px 0 0; color: var(--muted); font-size: 12px; }
.error { color: var(--bad); margin: 10px 0 0; font-size: 13px; }
.error:empty { display: none; }
.notice { display: flex; justify-content: space-between; align-items: center; gap: 12px; padding: 8px 12px; border-radius: 8px; margin-bottom: 10px; font-size: 13px; }
.notice.ok { background: var(--ok-bg); color: var(--ok); }
.notice.error { background: var(--bad-bg); color: var(--bad); }
.notice button { color: inherit; }
section.auth { max-width: 520px; justify-self: center; width: 100%; border-color: var(--accent); }
form.auth { display: flex; gap: 10px; align-items: end; margin-top: 12px; }
form.auth label { flex: 1; }
.empty { color: var(--muted); text-align: center; padding: 18px; }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 0 0 24px; }
@media (max-width: 760px) {
  form.add { grid-template-columns: 1fr; }
  .stat.wide { grid-column: auto; }
  main, header.top { padding-left: 14px; padding-right: 14px; }
}
`

export const DASHBOARD_SCRIPT = String.raw`
(function () {
  'use strict'
  var TOKEN_KEY = 'sluice.adminToken'
  var POLL_MS = 1000
  var TIMEOUT_MS = 5000
  var POINTS = 120
  var SHARE_WINDOW = ${SHARE_WINDOW_S}
  var W = 600
  var H = 120

  var token = sessionStorage.getItem(TOKEN_KEY) || ''
  var timer = 0
  var polling = false
  var pollAgain = false
  var waitingForToken = false
  var prev = null
  var series = { rps: [], r429: [] }
  var samples = []
  var rows = new Map()
  var noticeTimer = 0

  function $ (id) { return document.getElementById(id) }
  function el (tag, className, text) {
    var node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = String(text)
    return node
  }
  function num (value) { var n = Number(value); return isFinite(n) ? n : 0 }
  function fmtInt (value) { return Math.round(num(value)).toLocaleString('en-US') }
  function fmtRate (value) { var n = num(value); return Number.isInteger(n) ? n.toLocaleString('en-US') : n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2) }
  function fmtMs (value) { var n = num(value); return Number.isInteger(n) ? String(n) : n >= 100 ? String(Math.round(n)) : n >= 10 ? n.toFixed(1) : n.toFixed(2) }
  function fmtPct (ratio) { var p = num(ratio) * 100; return (p === 0 ? '0' : p < 0.01 ? '<0.01' : p < 10 ? p.toFixed(2) : p.toFixed(1)) + ' %' }
  function fmtDuration (seconds) {
    var s = Math.floor(num(seconds))
    var d = Math.floor(s / 86400); var h = Math.floor(s % 86400 / 3600); var m = Math.floor(s % 3600 / 60); var r = s % 60
    function two (n) { return n < 10 ? '0' + n : String(n) }
    if (d > 0) return d + 'd ' + two(h) + 'h ' + two(m) + 'm'
    if (h > 0) return h + 'h ' + two(m) + 'm ' + two(r) + 's'
    if (m > 0) return m + 'm ' + two(r) + 's'
    return r + 's'
  }
  function clock (date) { return date.toLocaleTimeString([], { hour12: false }) }
  function setValue (id, text, unit) {
    var node = $(id)
    node.textContent = text
    if (unit) node.appendChild(el('small', '', unit))
  }

  function setConn (kind, text) {
    $('live').className = 'dot ' + kind
    $('conn-text').textContent = text
  }

  function notice (kind, text) {
    var box = $('notice')
    clearTimeout(noticeTimer)
    box.className = 'notice ' + kind
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status')
    $('notice-text').textContent = text
    box.hidden = false
    if (kind === 'ok') noticeTimer = setTimeout(function () { box.hidden = true }, 6000)
  }

  async function api (method, path, body) {
    var headers = { accept: 'application/json' }
    if (token) headers.authorization = 'Bearer ' + token
    var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit', signal: AbortSignal.timeout(TIMEOUT_MS) }
    if (body !== undefined) {
      headers['content-type'] = 'application/json'
      init.body = JSON.stringify(body)
    }
    var res = await fetch(path, init)
    var data = null
    try { data = await res.json() } catch { data = null }
    if (res.status === 401) askToken(token ? 'That token was refused (401 ' + messageOf({ status: 401, data: data }) + ').' : '')
    return { status: res.status, ok: res.ok, data: data }
  }
  function messageOf (res) {
    return res.data && typeof res.data.message === 'string' ? res.data.message : 'HTTP ' + res.status
  }
  function failure (e) {
    return e && e.name === 'TimeoutError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : 'the gateway is unreachable'
  }

  function askToken (message) {
    waitingForToken = true
    clearTimeout(timer)
    $('auth').hidden = false
    $('auth-error').textContent = message
    $('forget').hidden = !token
    setConn('wait', 'Admin token needed')
    $('token').focus()
  }

  $('auth-form').addEventListener('submit', function (event) {
    event.preventDefault()
    var value = $('token').value.trim()
    if (!value) { $('auth-error').textContent = 'Enter the gateway\'s ADMIN_TOKEN.'; return }
    token = value
    sessionStorage.setItem(TOKEN_KEY, token)
    $('token').value = ''
    $('auth').hidden = true
    $('forget').hidden = false
    waitingForToken = false
    poll()
  })
  $('forget').addEventListener('click', function () {
    token = ''
    sessionStorage.removeItem(TOKEN_KEY)
    $('forget').hidden = true
    waitingForToken = false
    poll()
  })
  $('notice-close').addEventListener('click', function () { $('notice').hidden = true })

  async function poll () {
    if (polling) { pollAgain = true; return }
    polling = true
    clearTimeout(timer)
    try {
      var res = await api('GET', 'status')
      if (res.status === 401) return
      if (!res.ok || !res.data || !res.data.requests) {
        setConn('down', 'Status refused: ' + messageOf(res))
      } else {
        render(res.data)
        setConn('up', 'Live · updated ' + clock(new Date()))
      }
    } catch (e) {
      setConn('down', 'No status: ' + failure(e))
    } finally {
      polling = false
      if (pollAgain) { pollAgain = false; poll() } else schedule()
    }
  }
  function schedule () {
    clearTimeout(timer)
    if (!waitingForToken) timer = setTimeout(poll, POLL_MS)
  }

  function render (s) {
    var now = performance.now()
    var total = num(s.requests.total)
    var codes = s.statusCodes || {}
    var c429 = num(codes['429'])
    if (prev && (total < prev.total || c429 < prev.c429)) {
      // the counters went back: another process (a restart) answers now
      prev = null; series.rps = []; series.r429 = []; samples = []
    }
    if (!prev) {
      prev = { at: now, total: total, c429: c429 }
    } else if (now - prev.at >= 500) {
      var dt = (now - prev.at) / 1000
      push(series.rps, (total - prev.total) / dt)
      push(series.r429, (c429 - prev.c429) / dt)
      prev = { at: now, total: total, c429: c429 }
    }
    var rps = series.rps.length ? series.rps[series.rps.length - 1] : num(s.requests.perSecond)

    setValue('uptime', fmtDuration(s.uptimeSeconds))
    $('uptime-sub').textContent = fmtInt(total) + ' requests since start'
    setValue('rps', fmtRate(rps), '/s')
    $('rps-sub').textContent = '60 s mean ' + fmtRate(s.requests.perSecond) + '/s'
    setValue('error-rate', fmtPct(s.requests.errorRate))
    $('error-rate-sub').textContent = fmtInt(s.requests.errors) + ' answered 5xx'
    var lat = s.latencyMs || {}
    setValue('p50', fmtMs(lat.p50), 'ms')
    setValue('p95', fmtMs(lat.p95), 'ms')
    setValue('p99', fmtMs(lat.p99), 'ms')
    $('lat-sub').textContent = 'avg ' + fmtMs(lat.avg) + ' ms · max ' + fmtMs(lat.max) + ' ms, since start'
    setValue('r429', fmtInt(c429))
    $('r429-sub').textContent = fmtInt(s.requests.rateLimited) + ' by the rate limiter'

    var chips = $('codes')
    chips.replaceChildren()
    var keys = Object.keys(codes).sort()
    for (var i = 0; i < keys.length; i++) {
      chips.appendChild(el('span', 'chip s' + String(keys[i]).charAt(0), keys[i] + ' × ' + fmtInt(codes[keys[i]])))
    }
    if (!keys.length) chips.appendChild(el('span', 'muted', 'none yet'))
    var limiter = s.limiter || {}
    $('limiter').textContent = String(limiter.store || '?') + ', ' + String(limiter.algorithm || '?') + (limiter.degraded ? ', degraded (Redis not answering)' : '')
    $('limiter').className = limiter.degraded ? 'bad-text' : ''

    drawChart('rps', series.rps)
    drawChart('r429', series.r429)
    renderServers(Array.isArray(s.servers) ? s.servers : [], now)
  }
  function push (list, value) {
    list.push(Math.max(0, value))
    if (list.length > POINTS) list.shift()
  }

  function niceMax (value) {
    if (!(value > 0)) return 1
    var p = Math.pow(10, Math.floor(Math.log10(value)))
    var steps = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= value) return steps[i] * p
    return 10 * p
  }
  function drawChart (id, data) {
    var max = niceMax(Math.max.apply(null, data.concat([0])))
    var step = W / (POINTS - 1)
    var pts = []
    for (var i = 0; i < data.length; i++) {
      var x = W - (data.length - 1 - i) * step
      var y = H - data[i] / max * (H - 4) - 2
      pts.push(x.toFixed(1) + ',' + y.toFixed(1))
    }
    $(id + '-line').setAttribute('points', pts.join(' '))
    $(id + '-area').setAttribute('d', pts.length > 1 ? 'M' + pts[0].split(',')[0] + ',' + H + ' L' + pts.join(' L') + ' L' + W + ',' + H + ' Z' : '')
    $(id + '-max').textContent = fmtRate(max) + '/s'
    $(id + '-now').textContent = data.length ? fmtRate(data[data.length - 1]) + '/s' : '–'
  }

  function shares (servers, now) {
    var totals = {}
    for (var i = 0; i < servers.length; i++) totals[servers[i].id] = num(servers[i].totalRequests)
    samples.push({ at: now, totals: totals })
    if (samples.length > SHARE_WINDOW + 1) samples.shift()
    var deltas = {}
    var sum = 0
    for (var id in totals) {
      var first = totals[id]
      for (var j = 0; j < samples.length; j++) {
        if (Object.prototype.hasOwnProperty.call(samples[j].totals, id)) { first = samples[j].totals[id]; break }
      }
      deltas[id] = Math.max(0, totals[id] - first)
      sum += deltas[id]
    }
    var result = {}
    for (var key in deltas) result[key] = sum > 0 ? deltas[key] / sum : null
    return result
  }

  function renderServers (servers, now) {
    var share = shares(servers, now)
    var tbody = $('server-rows')
    var seen = new Set()
    var order = []
    for (var i = 0; i < servers.length; i++) {
      var s = servers[i]
      var id = String(s.id)
      seen.add(id)
      var row = rows.get(id)
      if (!row) { row = makeRow(id); rows.set(id, row) }
      updateRow(row, s, share[id])
      order.push(row.tr)
    }
    rows.forEach(function (row, id) { if (!seen.has(id)) { row.tr.remove(); clearTimeout(row.armTimer); rows.delete(id) } })
    var inPlace = tbody.children.length === order.length
    for (var k = 0; inPlace && k < order.length; k++) if (tbody.children[k] !== order[k]) inPlace = false
    if (!inPlace) for (var m = 0; m < order.length; m++) tbody.appendChild(order[m])
    $('empty').hidden = servers.length > 0
    var routable = servers.filter(function (x) { return x.enabled && x.state === 'healthy' }).length
    $('pool-summary').textContent = servers.length + (servers.length === 1 ? ' server' : ' servers') + ', ' + routable + ' taking traffic'
  }

  function cell (tr, className, col) { var td = el('td', className); td.dataset.col = col; tr.appendChild(td); return td }
  function makeRow (id) {
    var tr = el('tr')
    tr.dataset.id = id
    var row = { id: id, tr: tr, server: null, armed: false, armTimer: 0 }
    var who = cell(tr, 'server', 'server')
    row.name = who.appendChild(el('div', 'srv-name'))
    row.url = who.appendChild(el('div', 'srv-url mono'))
    row.badge = cell(tr, 'state', 'state').appendChild(el('span', 'badge'))

    var weightCell = cell(tr, '', 'weight')
    var form = weightCell.appendChild(el('form', 'weight'))
    row.weight = form.appendChild(el('b'))
    row.weightInput = form.appendChild(el('input'))
    row.weightInput.type = 'number'
    row.weightInput.min = '1'
    row.weightInput.max = '1000'
    row.weightInput.placeholder = 'new'
    row.weightSet = form.appendChild(el('button', 'small', 'Set'))
    row.weightSet.type = 'submit'
    form.noValidate = true
    form.addEventListener('submit', function (event) {
      event.preventDefault()
      var raw = row.weightInput.value.trim()
      if (!raw) { row.weightInput.focus(); return }
      var n = Number(raw)
      act(row, 'set the weight of ' + row.label, 'PATCH', { weight: isFinite(n) ? n : raw }, function (server) {
        row.weightInput.value = ''
        return 'Weight of ' + server.name + ' is now ' + server.weight + '.'
      })
    })

    row.enabled = cell(tr, '', 'enabled')
    row.inFlight = cell(tr, 'n', 'in-flight')
    var reqCell = cell(tr, 'n', 'requests')
    row.total = reqCell.appendChild(el('div'))
    row.failed = reqCell.appendChild(el('small', 'muted'))
    var shareCell = cell(tr, 'n', 'share').appendChild(el('div', 'share'))
    var bar = shareCell.appendChild(el('span', 'bar'))
    row.shareBar = bar.appendChild(el('i'))
    row.share = shareCell.appendChild(el('span'))
    var check = cell(tr, 'check', 'check')
    row.check = check.appendChild(el('div'))
    row.checkAt = check.appendChild(el('small'))

    var actions = cell(tr, 'actions', 'actions')
    row.toggle = actions.appendChild(el('button', 'small'))
    row.toggle.type = 'button'
    row.toggle.addEventListener('click', function () {
      var enable = !row.server.enabled
      act(row, (enable ? 'enable ' : 'disable ') + row.label, 'PATCH', { enabled: enable }, function (server) {
        return server.name + (server.enabled ? ' is enabled.' : ' is disabled: it gets no new requests.')
      })
    })
    row.drain = actions.appendChild(el('button', 'small danger'))
    row.drain.type = 'button'
    row.drain.addEventListener('click', function () {
      if (!row.armed) { arm(row, true); return }
      arm(row, false)
      act(row, 'drain ' + row.label, 'DELETE', undefined, function (server) {
        return server.name + ' is draining: its in-flight requests finish, then it leaves the pool.'
      })
    })
    arm(row, false)
    return row
  }
  function arm (row, on) {
    clearTimeout(row.armTimer)
    row.armed = on
    row.drain.textContent = on ? 'Confirm drain' : 'Drain'
    row.drain.classList.toggle('armed', on)
    labelRow(row)
    if (on) row.armTimer = setTimeout(function () { arm(row, false) }, 5000)
  }
  function labelRow (row) {
    var name = row.label || row.id
    row.weightInput.setAttribute('aria-label', 'New weight for ' + name)
    row.weightSet.setAttribute('aria-label', 'Set weight of ' + name)
    row.toggle.setAttribute('aria-label', (row.server && !row.server.enabled ? 'Enable ' : 'Disable ') + name)
    row.drain.setAttribute('aria-label', (row.armed ? 'Confirm drain of ' : 'Drain ') + name)
  }

  function updateRow (row, s, share) {
    row.server = s
    row.label = String(s.name || s.url || s.id)
    var state = ['healthy', 'unhealthy', 'draining', 'unknown'].indexOf(s.state) >= 0 ? s.state : 'unknown'
    row.tr.classList.toggle('off', !s.enabled || state === 'draining')
    row.name.textContent = row.label
    row.url.textContent = String(s.url)
    row.url.title = 'id ' + String(s.id)
    row.badge.className = 'badge ' + state
    row.badge.textContent = state
    row.weight.textContent = String(s.weight)
    row.enabled.textContent = s.enabled ? 'yes' : 'no'
    row.enabled.className = s.enabled ? '' : 'muted'
    row.inFlight.textContent = fmtInt(s.inFlight)
    row.total.textContent = fmtInt(s.totalRequests)
    row.failed.textContent = num(s.failedRequests) > 0 ? fmtInt(s.failedRequests) + ' failed' : ''
    row.shareBar.style.width = share === null || share === undefined ? '0' : (share * 100).toFixed(1) + '%'
    row.share.textContent = share === null || share === undefined ? '–' : Math.round(share * 100) + ' %'
    var c = s.lastCheck
    if (c) {
      row.check.textContent = (c.ok ? '✓ ' : '✗ ') + fmtMs(c.latencyMs) + ' ms' + (c.status ? ' · ' + c.status : '')
      row.check.className = c.ok ? 'ok-text' : 'bad-text'
      var at = new Date(c.at)
      row.checkAt.textContent = isNaN(at.getTime()) ? '' : 'at ' + clock(at)
    } else {
      row.check.textContent = 'not checked'
      row.check.className = 'muted'
      row.checkAt.textContent = ''
    }
    var draining = state === 'draining'
    row.toggle.textContent = s.enabled ? 'Disable' : 'Enable'
    if (!row.busy) {
      row.toggle.disabled = draining
      row.drain.disabled = draining
      row.weightSet.disabled = draining
      row.weightInput.disabled = draining
    }
    if (draining && row.armed) arm(row, false)
    labelRow(row)
  }

  async function act (row, what, method, body, success) {
    row.busy = true
    row.toggle.disabled = row.drain.disabled = row.weightSet.disabled = true
    try {
      var res = await api(method, 'servers/' + encodeURIComponent(row.id), body)
      if (res.ok && res.data) notice('ok', success(res.data))
      else if (res.status !== 401) notice('error', 'Could not ' + what + ': ' + messageOf(res))
    } catch (e) {
      notice('error', 'Could not ' + what + ': ' + failure(e))
    } finally {
      row.busy = false
      row.toggle.disabled = row.drain.disabled = row.weightSet.disabled = false
      poll()
    }
  }

  $('add-form').addEventListener('submit', async function (event) {
    event.preventDefault()
    var error = $('add-error')
    var button = $('add-submit')
    error.textContent = ''
    var body = { url: $('add-url').value.trim() }
    var weight = $('add-weight').value.trim()
    if (weight) body.weight = isFinite(Number(weight)) ? Number(weight) : weight
    var name = $('add-name').value.trim()
    if (name) body.name = name
    button.disabled = true
    try {
      var res = await api('POST', 'servers', body)
      if (res.ok && res.data) {
        $('add-form').reset()
        notice('ok', 'Added ' + res.data.name + ' (' + res.data.url + '): it takes traffic once its first health check passes.')
      } else if (res.status !== 401) {
        error.textContent = 'Not added: ' + messageOf(res)
      }
    } catch (e) {
      error.textContent = 'Not added: ' + failure(e)
    } finally {
      button.disabled = false
      poll()
    }
  })

  $('forget').hidden = !token
  drawChart('rps', [])
  drawChart('r429', [])
  poll()
})()
`

const chart = (id: string, title: string): string => `
    <figure class="card chart ${id}">
      <figcaption><h2 id="${id}-title">${title}</h2><b id="${id}-now">–</b></figcaption>
      <div class="plot">
        <svg viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-labelledby="${id}-title">
          <g class="grid"><line x1="0" x2="600" y1="2" y2="2"/><line x1="0" x2="600" y1="61" y2="61"/><line x1="0" x2="600" y1="120" y2="120"/></g>
          <path id="${id}-area" class="area" d=""/>
          <polyline id="${id}-line" class="line" points=""/>
        </svg>
        <span class="ymax" id="${id}-max"></span>
      </div>
      <div class="axis"><span>2 min ago</span><span>now</span></div>
    </figure>`

/** The page around the style and the script (which the caller inserts, to hash them). */
export function dashboardHtml (style: string, script: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Sluice dashboard</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header class="top">
  <div class="brand">
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" aria-hidden="true"><path d="M3 7h6l3 5h9M3 17h6l3-5"/><path d="M18 9l3 3-3 3"/></svg>
    <h1>Sluice</h1><span class="sub">gateway dashboard</span>
  </div>
  <div class="conn"><span id="live" class="dot"></span><span id="conn-text">Connecting…</span><button id="forget" class="link" type="button" hidden>Forget token</button></div>
</header>
<main>
  <noscript><p class="card">This dashboard needs JavaScript.</p></noscript>
  <section id="auth" class="card auth" hidden aria-labelledby="auth-title">
    <h2 id="auth-title">Connect to the admin API</h2>
    <p class="hint">The admin API of this gateway needs its <span class="mono">ADMIN_TOKEN</span>. It is kept in this browser tab only (sessionStorage) and sent as a bearer token.</p>
    <form id="auth-form" class="auth" novalidate>
      <label>Admin token <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"></label>
      <button class="primary" type="submit">Connect</button>
    </form>
    <p id="auth-error" class="error" role="alert"></p>
  </section>

  <section class="stats" aria-label="Traffic since start">
    <div class="card stat"><div class="label">Uptime</div><div class="value" id="uptime">–</div><div class="sub" id="uptime-sub"></div></div>
    <div class="card stat"><div class="label">Requests/s</div><div class="value" id="rps">–</div><div class="sub" id="rps-sub"></div></div>
    <div class="card stat"><div class="label">Error rate</div><div class="value" id="error-rate">–</div><div class="sub" id="error-rate-sub"></div></div>
    <div class="card stat wide"><div class="label">Latency</div>
      <div class="lat"><div><span>p50</span><b id="p50">–</b></div><div><span>p95</span><b id="p95">–</b></div><div><span>p99</span><b id="p99">–</b></div></div>
      <div class="sub" id="lat-sub"></div></div>
    <div class="card stat"><div class="label">429 answers</div><div class="value" id="r429">–</div><div class="sub" id="r429-sub"></div></div>
  </section>

  <div class="meta"><span>Responses: <span class="chips" id="codes"></span></span><span>Limiter: <span id="limiter">–</span></span></div>

  <section class="charts" aria-label="Charts">${chart('rps', 'Requests/s')}${chart('r429', '429s/s')}
  </section>

  <section class="card" aria-labelledby="servers-title">
    <div class="card-head"><h2 id="servers-title">Servers</h2><span class="muted" id="pool-summary"></span></div>
    <div id="notice" class="notice" hidden><span id="notice-text"></span><button id="notice-close" class="link" type="button" aria-label="Dismiss">✕</button></div>
    <div class="table-wrap">
      <table aria-labelledby="servers-title">
        <thead><tr><th>Server</th><th>State</th><th>Weight</th><th>Enabled</th><th class="n">In flight</th><th class="n">Requests</th><th class="n">Share</th><th>Last check</th><th class="actions"><span class="muted">Actions</span></th></tr></thead>
        <tbody id="server-rows"></tbody>
      </table>
    </div>
    <p id="empty" class="empty" hidden>No servers in the pool.</p>
  </section>

  <section class="card" aria-labelledby="add-title">
    <div class="card-head"><h2 id="add-title">Add a server</h2></div>
    <form id="add-form" class="add" novalidate>
      <label>URL <input id="add-url" name="url" type="text" inputmode="url" class="mono" placeholder="http(s)://host:port" autocomplete="off" spellcheck="false"></label>
      <label>Weight <input id="add-weight" name="weight" type="number" min="1" max="1000" placeholder="1"></label>
      <label>Name <input id="add-name" name="name" type="text" maxlength="100" placeholder="optional" autocomplete="off"></label>
      <button id="add-submit" class="primary" type="submit">Add server</button>
    </form>
    <p id="add-error" class="error" role="alert"></p>
    <p class="hint">An http(s) origin, no path. It takes traffic once its first health check passes. Share is each server's part of the requests of the last ${SHARE_WINDOW_S} s.</p>
  </section>
</main>
<footer>Sluice · polls <span class="mono">/admin/status</span> every second · charts keep the last 2 minutes in this page</footer>
<script>${script}</script>
</body>
</html>
`
}
