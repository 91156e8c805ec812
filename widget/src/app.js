// OTP widget — main thread: form, Grist plugin API, bridge to the Python worker.
// Plain JS, no framework. The Python side lives in worker.js.

const DEFAULT_ENDPOINT = 'https://demarche.numerique.gouv.fr/api/v2/graphql';
const MSG = {
  loadingPython: 'Chargement de Python…',
  sync: 'Synchroniser',
  syncing: 'Synchronisation en cours…',
  badDemarche: 'Le numéro de démarche doit être un nombre entier, par exemple 12345.',
  noToken: "Saisissez le jeton d'API. Un administrateur de la démarche peut en créer un sur Démarches Simplifiées, "
    + "dans son profil, rubrique « Jetons d'API ».",
  badEndpoint: "L'adresse de l'API doit être une adresse web complète, par exemple " + DEFAULT_ENDPOINT + '.',
  notInGrist: "Ce widget doit être ouvert dans Grist, comme vue personnalisée avec l'accès complet au document.",
  done: 'Synchronisation terminée.',
};

const $ = (id) => document.getElementById(id);
const form = $('form');
const demarcheInput = $('demarche');
const tokenInput = $('token');
const endpointInput = $('endpoint');
const button = $('sync');
const progress = $('progress');
const statusLine = $('status');

// ---- UI helpers ---------------------------------------------------------------
let pythonReady = false;
let running = false;

function setState(state) { document.body.dataset.state = state; }

function setStatus(text, kind = '') {
  statusLine.textContent = text || '';
  statusLine.className = kind;
}

function updateButton(loadingMessage) {
  if (!pythonReady) {
    button.disabled = true;
    button.textContent = loadingMessage || button.textContent || MSG.loadingPython;
  } else if (running) {
    button.disabled = true;
    button.textContent = MSG.syncing;
  } else {
    button.disabled = false;
    button.textContent = MSG.sync;
  }
}

function markInvalid(input, invalid) {
  if (invalid) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// ---- prefill: URL query (demo/tests) and saved widget options ---------------------
const query = new URLSearchParams(location.search);
const edited = { demarche: false, endpoint: false };
if (query.get('demarche')) { demarcheInput.value = query.get('demarche'); edited.demarche = true; }
if (query.get('endpoint')) { endpointInput.value = query.get('endpoint'); edited.endpoint = true; }
// The token from the URL only fills the field; it is never stored anywhere.
if (query.get('token')) tokenInput.value = query.get('token');
if (endpointInput.value && endpointInput.value !== DEFAULT_ENDPOINT) $('advanced').open = true;

demarcheInput.addEventListener('input', () => { edited.demarche = true; markInvalid(demarcheInput, false); });
endpointInput.addEventListener('input', () => { edited.endpoint = true; markInvalid(endpointInput, false); });
tokenInput.addEventListener('input', () => markInvalid(tokenInput, false));

// ---- Grist --------------------------------------------------------------------------
const hasGrist = typeof window.grist !== 'undefined' && window.parent !== window;
let savedOptions = {};

if (hasGrist) {
  grist.ready({ requiredAccess: 'full' });
  let fallbackTried = false;
  grist.onOptions((options) => {
    savedOptions = options || {};
    if (!edited.demarche && savedOptions.demarche) demarcheInput.value = String(savedOptions.demarche);
    if (!edited.endpoint && savedOptions.endpoint) {
      endpointInput.value = savedOptions.endpoint;
      if (savedOptions.endpoint !== DEFAULT_ENDPOINT) $('advanced').open = true;
    }
    if (!fallbackTried && !demarcheInput.value) {
      fallbackTried = true;
      prefillFromDocument();
    }
  });
}

// Grist keeps options set by a widget as an unsaved draft until someone clicks
// « Save » on the section: after reopening the document they may be gone. The
// core records every synchronised démarche in the table OTP_Demarches, so use
// the most recently synchronised one when nothing else gave a number.
async function prefillFromDocument() {
  try {
    const tables = await grist.docApi.listTables();
    if (!tables.includes('OTP_Demarches')) return;
    const data = await grist.docApi.fetchTable('OTP_Demarches');
    const numbers = data.Numero || [];
    const times = data.Derniere_synchro || [];
    let best = -1;
    numbers.forEach((n, i) => {
      if (n && (best < 0 || (times[i] || 0) > (times[best] || 0))) best = i;
    });
    if (best >= 0 && !edited.demarche && !demarcheInput.value) demarcheInput.value = String(numbers[best]);
  } catch (err) {
    console.warn('OTP: lecture de OTP_Demarches impossible', err);
  }
}

async function saveOptions(values) {
  // Only the démarche number and the endpoint; NEVER the token.
  if (!hasGrist) return;
  const next = { demarche: values.demarche, endpoint: values.endpoint };
  if (savedOptions.demarche === next.demarche && savedOptions.endpoint === next.endpoint) return;
  try {
    await grist.setOptions(next);
    savedOptions = next;
  } catch (err) {
    console.warn('OTP: options non enregistrées', err);   // e.g. read-only document
  }
}

function validDemarche(value) { return /^[0-9]+$/.test(value) && Number(value) > 0 && value.length <= 15; }
function validEndpoint(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch (e) { return false; }
}

// Remember the number as soon as it is valid, not only when syncing.
demarcheInput.addEventListener('change', () => {
  const demarche = demarcheInput.value.trim();
  const endpoint = endpointInput.value.trim() || DEFAULT_ENDPOINT;
  if (validDemarche(demarche) && validEndpoint(endpoint)) saveOptions({ demarche, endpoint });
});
endpointInput.addEventListener('change', () => {
  const demarche = demarcheInput.value.trim();
  const endpoint = endpointInput.value.trim() || DEFAULT_ENDPOINT;
  if (validDemarche(demarche) && validEndpoint(endpoint)) saveOptions({ demarche, endpoint });
});

async function callDocApi(method, args) {
  if (!hasGrist) throw new Error(MSG.notInGrist);
  const fn = grist.docApi[method];
  if (typeof fn !== 'function') throw new Error(`Méthode Grist inconnue : ${method}`);
  return fn.apply(grist.docApi, Array.isArray(args) ? args : []);
}

// ---- worker ---------------------------------------------------------------------------
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const timings = { start: performance.now() };
let selftestWaiters = [];

function onProgressEvent(event) {
  if (!event || typeof event !== 'object') return;
  if (event.kind === 'progress') {
    progress.hidden = false;
    if (event.total === null || event.total === undefined) {
      progress.removeAttribute('value');                    // indeterminate
      progress.removeAttribute('max');
    } else {
      progress.max = Math.max(Number(event.total), 1);
      progress.value = Math.min(Number(event.done) || 0, progress.max);
    }
    if (event.message) setStatus(event.message);
  } else if (event.kind === 'phase') {
    if (event.message) setStatus(event.message);
  } else if (event.message) {
    setStatus(event.message);
  }
}

worker.onmessage = async (ev) => {
  const msg = ev.data || {};
  switch (msg.type) {
    case 'loading':
      updateButton(msg.message);
      if (!running) setStatus(msg.message);
      break;
    case 'ready':
      pythonReady = true;
      timings.ready = performance.now() - timings.start;
      timings.worker = msg.timings;
      updateButton();
      setStatus('');
      setState('ready');
      break;
    case 'grist': {
      let reply;
      try {
        const result = await callDocApi(msg.method, msg.args);
        reply = { type: 'grist-result', id: msg.id, ok: true, result: result === undefined ? null : result };
      } catch (err) {
        // grist-static (at least) rejects with an empty Error: say which call failed.
        const detail = (err && err.message) || '';
        reply = {
          type: 'grist-result', id: msg.id, ok: false,
          message: detail || `Grist a refusé l'opération ${msg.method} (sans autre détail).`,
        };
      }
      worker.postMessage(reply);
      break;
    }
    case 'event':
      onProgressEvent(msg.event);
      break;
    case 'done': {
      running = false;
      const result = msg.result || {};
      if (!progress.hidden && progress.hasAttribute('max')) progress.value = progress.max;
      else progress.hidden = true;
      setStatus(result.message || MSG.done, 'success');
      updateButton();
      setState('done');
      window.otpWidget.lastResult = result;
      break;
    }
    case 'error':
      running = false;
      progress.hidden = true;
      setStatus(msg.message || 'Erreur inattendue.', 'error');
      if (msg.fatal) {
        button.disabled = true;
        button.textContent = MSG.sync;
      } else {
        updateButton();
      }
      setState('error');
      break;
    case 'selftest-result': {
      const waiters = selftestWaiters;
      selftestWaiters = [];
      waiters.forEach((w) => (msg.ok ? w.resolve(msg.result) : w.reject(new Error(msg.message))));
      break;
    }
    default:
      break;
  }
};
worker.onerror = (ev) => {
  console.error('OTP worker error', ev);
  setStatus(`Impossible de démarrer le moteur Python du widget (${ev.message || 'erreur du worker'}).`, 'error');
  setState('error');
};

// ---- form ----------------------------------------------------------------------------------
function validate() {
  const demarche = demarcheInput.value.trim();
  const token = tokenInput.value.trim();
  const endpoint = endpointInput.value.trim() || DEFAULT_ENDPOINT;
  if (!validDemarche(demarche)) return { error: MSG.badDemarche, field: demarcheInput };
  if (!token) return { error: MSG.noToken, field: tokenInput };
  if (!validEndpoint(endpoint)) {
    $('advanced').open = true;
    return { error: MSG.badEndpoint, field: endpointInput };
  }
  const keep_deleted = $('keep-deleted').checked;
  return { params: { demarche, token, endpoint, keep_deleted } };
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!pythonReady || running) return;
  [demarcheInput, tokenInput, endpointInput].forEach((i) => markInvalid(i, false));
  const { error, field, params } = validate();
  if (error) {
    markInvalid(field, true);
    setStatus(error, 'error');
    setState('error');
    field.focus();
    return;
  }
  saveOptions(params);
  window.otpWidget.lastResult = null;
  running = true;
  updateButton();
  progress.hidden = false;
  progress.removeAttribute('value');
  setStatus('Connexion à Démarches Simplifiées…');
  setState('syncing');
  worker.postMessage({ type: 'sync', params });
});

// ---- hooks for tests and debugging -------------------------------------------------------------
window.otpWidget = {
  worker,
  timings,
  lastResult: null,
  // Runs plain Python in the worker that writes a table through the whole
  // worker -> main thread -> Grist path, and reads it back.
  selftest() {
    return new Promise((resolve, reject) => {
      selftestWaiters.push({ resolve, reject });
      worker.postMessage({ type: 'selftest' });
    });
  },
  check(params) { worker.postMessage({ type: 'check', params }); },
};

setStatus(MSG.loadingPython);
updateButton(MSG.loadingPython);
