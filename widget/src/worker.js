// OTP widget — Python side, in a module Web Worker.
//
// Its French messages are in messages.js (WORKER_MSG).
// Loads Pyodide and the wheels listed in manifest.json, imports
// py_core.widget_entry, then runs its coroutines on request. The worker never
// talks to Grist directly: Grist calls go through the main thread (which owns
// the grist-plugin API) by messages.
//
// Main thread -> worker:
//   {type:'sync',  params:{demarche, token, endpoint, keep_deleted, ds_site?}}
//                                          (ds_site: DS's site when the API is the relay)
//   {type:'check', params:{...}}
//   {type:'cancel'}                        stop the running sync between two pages
//   {type:'selftest'}                      (test hook, no py_core needed)
//   {type:'grist-result', id, ok, result}  / {type:'grist-result', id, ok:false, message}
// Worker -> main thread:
//   {type:'loading', message}              French, for the button/status
//   {type:'ready', timings, versions}
//   {type:'grist', id, method, args}       call grist.docApi[method](...args)
//   {type:'event', event}                  progress events from Python
//   {type:'done', op, result}              result: parsed summary object
//   {type:'error', op, message, code?, fatal?}  French message, never the token; code: the
//                                          core's OTPError code (token_expired, cancelled, …)
//   {type:'selftest-result', ok, result|message}

import { WORKER_MSG as MSG } from './messages.js';
import { loadPyodide } from './pyodide/pyodide.mjs';

const post = (msg) => self.postMessage(msg);
const t0 = performance.now();
const timings = {};

// ---- Grist bridge ---------------------------------------------------------
let nextCallId = 1;
const pendingCalls = new Map();

// Called from Python: grist_call(method, args_json) -> Promise<json string>
function gristCall(method, argsJson) {
  const id = nextCallId++;
  let args;
  try {
    args = argsJson === undefined || argsJson === null || argsJson === '' ? [] : JSON.parse(argsJson);
  } catch (e) {
    return Promise.reject(new Error(MSG.badArguments(method)));
  }
  if (!Array.isArray(args)) args = [args];
  return new Promise((resolve, reject) => {
    pendingCalls.set(id, { resolve, reject, method });
    post({ type: 'grist', id, method: String(method), args });
  });
}

function onGristResult(msg) {
  const call = pendingCalls.get(msg.id);
  if (!call) return;
  pendingCalls.delete(msg.id);
  if (msg.ok) {
    call.resolve(JSON.stringify(msg.result === undefined ? null : msg.result));
  } else {
    call.reject(new Error(msg.message || MSG.gristFailed(call.method)));
  }
}

// Called from Python between two pages: has the agent clicked « Annuler » ?
let cancelRequested = false;
function shouldCancel() { return cancelRequested; }

// Called from Python: emit(event_json)
function emit(eventJson) {
  let event;
  try { event = JSON.parse(eventJson); } catch (e) { return; }
  post({ type: 'event', event });
}

const SELFTEST = `
import json
async def _otp_selftest(grist_call):
    table = "OtpSelfTest"
    actions = [
        ["AddTable", table, [{"id": "Nom", "type": "Text"}, {"id": "Nombre", "type": "Int"}]],
        ["BulkAddRecord", table, [None, None], {"Nom": ["un", "deux"], "Nombre": [1, 2]}],
    ]
    applied = json.loads(await grist_call("applyUserActions", json.dumps([actions])))
    tables = json.loads(await grist_call("listTables", "[]"))
    data = json.loads(await grist_call("fetchTable", json.dumps([applied["retValues"][0]["table_id"]])))
    errors = {}
    for method, args in (("fetchTable", ["OtpNoSuchTable"]), ("noSuchMethod", [])):
        try:
            await grist_call(method, json.dumps(args))
            errors[method] = None
        except Exception as exc:  # JsException carrying the main thread's message
            errors[method] = f"{type(exc).__name__}: {exc}"
    return json.dumps({"applied": applied["retValues"][0], "tables": tables, "data": data, "errors": errors})
_otp_selftest
`;

// ---- start-up ---------------------------------------------------------------
let pyodide = null;
let runner = null;

async function start() {
  post({ type: 'loading', message: MSG.loadingPython });
  const manifestUrl = new URL('./manifest.json', import.meta.url);
  const manifestPromise = fetch(manifestUrl, { cache: 'no-cache' }).then((r) => {
    if (!r.ok) throw new Error(`manifest.json: HTTP ${r.status}`);
    return r.json();
  });
  let t = performance.now();
  pyodide = await loadPyodide({ indexURL: new URL('./pyodide/', import.meta.url).href });
  timings.pyodide = Math.round(performance.now() - t);

  post({ type: 'loading', message: MSG.loadingModules });
  t = performance.now();
  const manifest = await manifestPromise;
  const wheelUrls = manifest.wheels.map((w) => new URL(`./wheels/${w.file}`, import.meta.url).href);
  await pyodide.loadPackage(wheelUrls, { messageCallback: () => {}, errorCallback: (m) => console.warn(m) });
  timings.packages = Math.round(performance.now() - t);

  return manifest;
}

const pyodideReady = start();   // Pyodide + wheels (enough for the self-test)
const ready = pyodideReady.then(async (manifest) => {
  post({ type: 'loading', message: MSG.preparing });
  const t = performance.now();
  await pyodide.runPythonAsync('import py_core.widget_entry');
  // py_core.widget_entry.run: an entry point's result or error as a JSON envelope (token masked)
  runner = pyodide.pyimport('py_core.widget_entry').run;
  timings.import = Math.round(performance.now() - t);
  timings.total = Math.round(performance.now() - t0);
  post({
    type: 'ready',
    timings,
    versions: { py_core: manifest.py_core_version, pyodide: manifest.pyodide_version },
  });
});
ready.catch((err) => {
  console.error(err);
  const detail = String((err && err.message) || err).split('\n').filter(Boolean).slice(-1)[0] || '';
  post({
    type: 'error',
    op: 'load',
    fatal: true,
    message: MSG.loadFailed(detail),
  });
});

// ---- operations ---------------------------------------------------------------
let busy = false;

async function runOperation(op, fnName, params) {
  if (busy) {
    post({ type: 'error', op, message: MSG.busy });
    return;
  }
  busy = true;
  const token = params && params.token ? String(params.token) : '';
  try {
    await ready;
    cancelRequested = false;
    const envelopeJson = await runner(fnName, JSON.stringify(params || {}), gristCall, emit, shouldCancel);
    const envelope = JSON.parse(envelopeJson);
    if (envelope.ok) {
      let result = envelope.result;
      if (typeof result === 'string') {
        try { result = JSON.parse(result); } catch (e) { result = { message: result }; }
      }
      post({ type: 'done', op, result: result ?? {} });
    } else {
      if (envelope.traceback) console.warn(envelope.traceback);
      post({ type: 'error', op, message: envelope.message, code: envelope.code || null });
    }
  } catch (err) {
    let message = MSG.unexpected((err && err.message) || err);
    if (token && token.length >= 4) message = message.split(token).join('***');
    post({ type: 'error', op, message });
  } finally {
    busy = false;
  }
}

async function runSelftest() {
  try {
    await pyodideReady;
    const fn = await pyodide.runPythonAsync(SELFTEST);
    const resultJson = await fn(gristCall);
    fn.destroy();
    post({ type: 'selftest-result', ok: true, result: JSON.parse(resultJson) });
  } catch (err) {
    post({ type: 'selftest-result', ok: false, message: String((err && err.message) || err) });
  }
}

self.onmessage = (ev) => {
  const msg = ev.data || {};
  switch (msg.type) {
    case 'grist-result': onGristResult(msg); break;
    case 'sync': runOperation('sync', 'sync_from_widget', msg.params); break;
    case 'check': runOperation('check', 'check_from_widget', msg.params); break;
    // « Dites-le-nous une fois » (prefill.js): the operation's name is its Python entry's
    case 'prefill_prepare': case 'prefill_create': case 'prefill_follow': runOperation(msg.type, msg.type, msg.params); break;
    case 'cancel': if (busy) { cancelRequested = true; post({ type: 'event', event: { kind: 'phase', message: MSG.stopping } }); } break;
    case 'selftest': runSelftest(); break;
    default: console.warn(MSG.unknownMessage, msg.type);
  }
};
