// OTP widget — main thread: form, Grist plugin API, bridge to the Python worker.
// Plain JS, no framework. The Python side lives in worker.js; who may use the token in trust.js.

import {
  confirmationKey, frameVerdict, memoryKey as memoryKeyFor, parseOrigins, trustedDestination,
} from './trust.js';

const DEFAULT_ENDPOINT = 'https://demarche.numerique.gouv.fr/api/v2/graphql';
// DS's own sites: the token may go there without asking (over https).
const DS_HOSTS = ['demarche.numerique.gouv.fr', 'www.demarches-simplifiees.fr'];
// Plain http is allowed only to this machine (tests, the local demo).
const LOCAL_HOSTNAMES = ['localhost', '127.0.0.1', '[::1]'];
// Written by the server that hosts the widget, next to index.html: the relay
// (relay/nginx/default.conf.template) serves {"endpoint": "/api/v2/graphql", "dsSite": DS origin};
// the local demo's server (demo/serve.py) serves {"demo": true}. Absent (404) on a plain static host.
const CONFIG_URL = new URL('./otp-config.json', import.meta.url);
// localStorage key prefix: addresses (origin and path) this browser's agent agreed to send the
// token to.
const CONFIRMED_KEY = 'otp.jeton.adresse-confirmee:';
const MSG = {
  loadingPython: 'Chargement de Python…',
  sync: 'Synchroniser',
  syncing: 'Synchronisation en cours…',
  badDemarche: 'Le numéro de démarche doit être un nombre entier, par exemple 12345.',
  noToken: "Saisissez le jeton d'API. Un administrateur de la démarche peut en créer un sur Démarches Simplifiées, "
    + "dans son profil, rubrique « Jetons d'API ».",
  badEndpoint: "L'adresse de l'API doit être une adresse web complète, par exemple " + DEFAULT_ENDPOINT + '.',
  notInGrist: "Ce widget doit être ouvert dans Grist, comme vue personnalisée avec l'accès complet au document.",
  // The page that frames the widget is not a Grist server the deployment declared.
  untrusted: {
    foreign: (pages, allowed) => `Ce widget est affiché par ${pages}, qui n'est pas un serveur Grist autorisé `
      + "pour ce widget : par sécurité, il n'utilise ici aucun jeton et ne synchronise rien. Ouvrez-le depuis "
      + `votre Grist (${allowed}) ; si c'est bien votre Grist, demandez à l'équipe qui héberge le widget de `
      + "l'ajouter au réglage OTP_GRIST_ORIGINS du relais.",
    'no-origins': "Ce widget ne sait pas quels serveurs Grist peuvent l'afficher (réglage OTP_GRIST_ORIGINS du "
      + "relais absent) : par sécurité, il n'utilise aucun jeton et ne synchronise rien. Prévenez l'équipe qui "
      + 'héberge le widget.',
    unknown: "Ce navigateur ne dit pas quelle page affiche ce widget : par sécurité, il n'utilise aucun jeton et "
      + 'ne synchronise rien. Ouvrez le widget depuis Grist dans un navigateur à jour (Firefox, Chrome, Edge).',
  },
  httpsOnly: (host) => `Le jeton ne peut être envoyé qu'en https : l'adresse de l'API doit commencer par https:// `
    + `(http:// n'est accepté que vers cet ordinateur : localhost, 127.0.0.1). Le jeton n'a pas été envoyé à ${host}.`,
  cancelled: "Synchronisation annulée : le jeton n'a pas été envoyé.",
  destination: 'Le jeton sera envoyé à : ',
  badDestination: '(adresse de l\'API invalide)',
  done: 'Synchronisation terminée.',
  accessDenied: (detail) => "vos droits sur ce document ne permettent pas cette modification (document en lecture "
    + `seule pour vous, ou règles d'accès du document ; demandez à un propriétaire) [Grist : ${detail}]`,
  readOnly: "Ce document est en lecture seule pour vous : la synchronisation n'a pas été lancée et rien n'a été "
    + "écrit dans le document. Pour synchroniser, demandez à un propriétaire du document l'accès en modification "
    + '(« Éditeur » ou « Propriétaire »).',
  tokenKept: "Jeton conservé dans ce navigateur uniquement (pour ce document et cette démarche), jamais dans le "
    + 'document.',
  tokenNotKept: 'Après une connexion réussie, le jeton est conservé dans ce navigateur uniquement, jamais dans le '
    + 'document.',
  tokenForgotten: "Jeton oublié : il n'est plus conservé dans ce navigateur.",
  tokenDropped: ' Le jeton conservé dans ce navigateur a été oublié : saisissez un nouveau jeton.',
  checking: 'Test de la connexion à Démarches Simplifiées…',
  checkOk: (r) => `Connexion réussie : démarche n° ${r.number} « ${r.title} »`
    + (r.state ? `, ${STATE_LABELS[r.state] || r.state}` : '')
    + (r.dossiers_count !== null && r.dossiers_count !== undefined
      ? `, ${formatCount(r.dossiers_count)} dossier${Number(r.dossiers_count) > 1 ? 's' : ''}` : '')
    + ". Rien n'a été écrit dans le document.",
  stopping: 'Annulation : la synchronisation s’arrête après la page en cours…',   // as worker.js says it
  autoSync: (age) => `Synchronisation automatique à l'ouverture (dernière synchronisation ${age})…`,
  rate: (perSecond) => `${perSecond < 10 ? perSecond.toLocaleString('fr-FR', { maximumFractionDigits: 1 })
    : formatCount(Math.round(perSecond))} dossiers/s`,
  remaining: (seconds) => `environ ${formatDuration(seconds)} restante${Math.round(seconds) > 1 ? 's' : ''}`,
};
// DS's procedure states (demarcheDescriptor.state), as DS shows them.
const STATE_LABELS = {
  brouillon: 'en test (brouillon)', publiee: 'publiée', close: 'close', depubliee: 'dépubliée',
};
// Core error codes for a token DS rejects (py_core/errors.py): it is forgotten in this browser.
const REJECTED_TOKEN_CODES = ['token_expired', 'token_rejected', 'forbidden_network'];

function formatCount(n) { return Number(n).toLocaleString('fr-FR'); }

function formatDuration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')}`;
}
// Grist's refusals for lack of rights (a viewer, or the document's access rules).
const ACCESS_DENIED = /No write access|Blocked by [a-z ]*access rules|ACL ?Deny/i;
// localStorage key: this browser's id, the first half of the sync lease's holder.
const BROWSER_ID_KEY = 'otp.navigateur';

const $ = (id) => document.getElementById(id);
const form = $('form');
const demarcheInput = $('demarche');
const tokenInput = $('token');
const endpointInput = $('endpoint');
const button = $('sync');
const checkButton = $('check');
const progress = $('progress');
const statusLine = $('status');
const detailLine = $('progress-detail');

// ---- UI helpers ---------------------------------------------------------------
let pythonReady = false;
let running = false;       // a sync or a connection test is under way
let runningOp = null;      // 'sync' | 'check'
let fatalError = false;

function setState(state) { document.body.dataset.state = state; }

// kind: '' (plain), 'error', 'success', 'info' (neutral: a cancelled sync), 'waiting'.
function setStatus(text, kind = '') {
  statusLine.textContent = text || '';
  statusLine.className = kind;
}

function setDetail(text) {
  detailLine.textContent = text || '';
  detailLine.hidden = !text;
}

function updateButton(loadingMessage) {
  if (fatalError) {
    button.disabled = true;
    checkButton.disabled = true;
    button.textContent = MSG.sync;
  } else if (!pythonReady) {
    button.disabled = true;
    checkButton.disabled = true;
    button.textContent = loadingMessage || button.textContent || MSG.loadingPython;
  } else if (running) {
    button.disabled = true;
    checkButton.disabled = true;
    button.textContent = runningOp === 'check' ? MSG.sync : MSG.syncing;
  } else {
    button.disabled = false;
    checkButton.disabled = false;
    button.textContent = MSG.sync;
  }
}

function markInvalid(input, invalid) {
  if (invalid) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// ---- where the token goes --------------------------------------------------------
// The API address can come from the agent (typed in the field), from the widget's
// defaults, or from the document (widget options, or the widget URL's ?endpoint=,
// which anyone who can edit the document can change). The token follows an address
// from the document only after the agent confirmed it once in this browser.
let defaultEndpoint = DEFAULT_ENDPOINT;   // the relay's own endpoint when served by a relay
let relayEndpoint = '';                   // the same, only when served by a relay
let dsSite = '';                          // DS's site (links to dossiers), from the relay's config
let demoMode = false;
let endpointSource = 'default';           // 'default' | 'document' | 'agent'
const confirmedInMemory = new Set();      // when localStorage is not available

function parseUrl(value) { try { return new URL(value); } catch (e) { return null; } }
function isLocalHost(hostname) { return LOCAL_HOSTNAMES.includes(hostname); }

function currentEndpoint() { return endpointInput.value.trim() || defaultEndpoint; }

function updateDestination() {
  const url = parseUrl(currentEndpoint());
  $('token-destination').firstChild.textContent = MSG.destination;
  $('token-host').textContent = url && /^https?:$/.test(url.protocol) ? url.host : MSG.badDestination;
}

function setEndpoint(value, source) {
  endpointInput.value = value;
  endpointSource = source;
  if (value && value !== defaultEndpoint) $('advanced').open = true;
  updateDestination();
}

function isConfirmed(endpoint) {
  const key = confirmationKey(endpoint);
  if (!key) return false;
  if (confirmedInMemory.has(key)) return true;
  try { return localStorage.getItem(CONFIRMED_KEY + key) !== null; } catch (e) { return false; }
}

function rememberConfirmed(endpoint) {
  const key = confirmationKey(endpoint);
  if (!key) return;
  confirmedInMemory.add(key);
  try { localStorage.setItem(CONFIRMED_KEY + key, new Date().toISOString()); } catch (e) { /* private mode */ }
}

// null when the token may go to this URL without asking, else the host to show in the question.
// Without asking: the relay's own endpoint (exact URL, from its otp-config.json), DS's sites, an
// address the agent typed, or one the agent confirmed before in this browser (exact address).
function hostNeedingConfirmation(endpoint) {
  const url = parseUrl(endpoint);
  if (!url) return null;                                   // refused by validate()
  if (trustedDestination(endpoint, { relayEndpoint, dsHosts: DS_HOSTS, dsSite })) return null;
  if (endpointSource === 'agent' || isConfirmed(endpoint)) return null;
  return url.host;
}

// French message when the token must not be sent to this URL (plain http elsewhere than here).
function transportError(endpoint) {
  const url = parseUrl(endpoint);
  if (!url || url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && isLocalHost(url.hostname)) return null;
  return MSG.httpsOnly(url.host);
}

// ---- prefill: URL query and saved widget options ----------------------------------
const query = new URLSearchParams(location.search);
// Grist adds readonly=true to a widget's URL when this user cannot edit the document (a viewer).
const readOnly = query.get('readonly') === 'true';
const edited = { demarche: false, endpoint: false };
if (query.get('demarche')) { demarcheInput.value = query.get('demarche'); edited.demarche = true; }
if (query.get('endpoint')) { setEndpoint(query.get('endpoint'), 'document'); edited.endpoint = true; }
updateDestination();

// The server hosting the widget says whether it is a relay (then the API address
// defaults to the relay's own) or the local demo (then ?token= and ?endpoint= of the
// URL count as typed by the agent). Never from the URL, which the document controls.
async function loadConfig() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  try {
    const response = await fetch(CONFIG_URL, { cache: 'no-cache', signal: controller.signal });
    if (!response.ok) return {};
    const config = await response.json();
    return config && typeof config === 'object' ? config : {};
  } catch (e) {
    return {};
  } finally {
    clearTimeout(timer);
  }
}

const configReady = loadConfig().then((config) => {
  if (typeof config.endpoint === 'string' && config.endpoint) {
    const url = parseUrl(new URL(config.endpoint, location.href).href);
    if (url && /^https?:$/.test(url.protocol)) {
      defaultEndpoint = url.href;
      relayEndpoint = url.href;
      if (endpointSource === 'default') setEndpoint(defaultEndpoint, 'default');
    }
  }
  const site = typeof config.dsSite === 'string' ? parseUrl(config.dsSite) : null;
  if (site && /^https?:$/.test(site.protocol)) dsSite = site.origin;
  // Demo only: a deployed widget never reads a token from its URL.
  demoMode = config.demo === true && isLocalHost(location.hostname);
  if (demoMode) {
    if (endpointSource === 'document' && query.get('endpoint') === endpointInput.value) endpointSource = 'agent';
    // The token from the URL only fills the field; it is never stored anywhere.
    if (query.get('token') && !tokenInput.value) tokenInput.value = query.get('token');
  }
  updateDestination();
  frameTrust = frameVerdict({
    framed: window.parent !== window, ancestorOrigins: location.ancestorOrigins, referrer: document.referrer,
    allowed: config.gristOrigins,
  });
  window.otpWidget.frame = { ...frameTrust };
  if (hasGrist && !frameTrust.trusted) refuseFramer(frameTrust, parseOrigins(config.gristOrigins));
  return config;
});

demarcheInput.addEventListener('input', () => { edited.demarche = true; markInvalid(demarcheInput, false); });
endpointInput.addEventListener('input', () => {
  edited.endpoint = true;
  endpointSource = 'agent';
  markInvalid(endpointInput, false);
  updateDestination();
  hideConfirmation();
});
tokenInput.addEventListener('input', () => markInvalid(tokenInput, false));

// ---- Grist --------------------------------------------------------------------------
const hasGrist = typeof window.grist !== 'undefined' && window.parent !== window;
let savedOptions = {};

// The frame check (trust.js): decided once otp-config.json is read. Until then, and for ever when
// the widget is framed by a page that is not a declared Grist server, no token is recalled, no
// sync starts, no click is accepted, and the widget does not even announce itself to its parent.
let frameTrust = { trusted: false, reason: 'pending', parent: '', foreign: [] };

// A token typed by the agent may be used by a declared Grist's widget, or by the widget opened
// on its own (not framed: no page speaks for Grist; a sync then stops at its first Grist call,
// « Ce widget doit être ouvert dans Grist… », a connection test works). Remembered tokens and
// syncs on opening: only in a declared Grist (frameTrust.trusted).
function mayUseToken() { return frameTrust.trusted || frameTrust.reason === 'not-framed'; }

function refuseFramer(verdict, allowed) {
  const messages = MSG.untrusted;
  const text = verdict.reason === 'foreign'
    ? messages.foreign(verdict.foreign.join(', '), allowed.join(', ') || '—')
    : messages[verdict.reason] || messages.unknown;
  fatalError = true;
  tokenInput.value = '';
  tokenInput.disabled = true;
  updateButton();
  setStatus(text, 'error');
  setState('untrusted');
}

if (hasGrist) {
  // The plugin API posts to '*': only to the parent's origin instead (guard.js found it).
  if (grist.rpc && typeof grist.rpc.setSendMessage === 'function') {
    const target = window.otpParentOrigin || '';
    grist.rpc.setSendMessage((msg) => { if (target) window.parent.postMessage(msg, target); });
  }
  configReady.then(() => { if (frameTrust.trusted) connectToGrist(); });
}

function connectToGrist() {
  grist.ready({ requiredAccess: 'full' });
  let fallbackTried = false;
  grist.onOptions((options) => {
    savedOptions = options || {};
    if (!edited.demarche && savedOptions.demarche) demarcheInput.value = String(savedOptions.demarche);
    if (!edited.endpoint && savedOptions.endpoint) setEndpoint(String(savedOptions.endpoint), 'document');
    if (!fallbackTried && (!demarcheInput.value || (!edited.endpoint && endpointSource === 'default'))) {
      fallbackTried = true;
      prefillDone = prefillFromDocument();
    }
    prefillDone.then(() => { optionsSeen = true; askDocKey(); recallForProcedure(); });
  });
}

// Grist keeps options set by a widget as an unsaved draft until someone clicks
// « Save » on the section: after reopening the document they may be gone. The
// core records every synchronised démarche in the table OTP_Demarches, with the
// API address of its last sync (Adresse_API): use the most recently synchronised
// one when nothing else gave a number, and its address when nothing else gave one
// (an address from the document: confirmed once per browser like the options').
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
    const row = numbers.findIndex((n) => n && String(n) === demarcheInput.value.trim());
    const address = row >= 0 && data.Adresse_API ? String(data.Adresse_API[row] || '').trim() : '';
    if (address && validEndpoint(address) && !edited.endpoint && endpointSource === 'default') {
      setEndpoint(address, 'document');
    }
  } catch (err) {
    console.warn('OTP: lecture de OTP_Demarches impossible', err);
  }
}

async function saveOptions(values) {
  // Only the démarche number and the endpoint; NEVER the token.
  if (!hasGrist) return;
  const next = { demarche: values.demarche, endpoint: values.endpoint };
  const filters = { ...(savedOptions.filters || {}) };   // per procedure, only those that filter
  if (values.filters) {
    if (filtersActive(values.filters) || values.filters.keep_out) filters[values.demarche] = values.filters;
    else delete filters[values.demarche];
  }
  if (Object.keys(filters).length) next.filters = filters;
  if (savedOptions.demarche === next.demarche && savedOptions.endpoint === next.endpoint
      && JSON.stringify(savedOptions.filters || {}) === JSON.stringify(next.filters || {})) return;
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
  const endpoint = currentEndpoint();
  if (validDemarche(demarche) && validEndpoint(endpoint)) saveOptions({ demarche, endpoint });
  recallForProcedure();
});

// ---- this browser's memory: the token and « Synchroniser à l'ouverture » ----------------
// Kept in the widget origin's localStorage only, one item per document and procedure:
// "otp.demarche:<Grist origin> <document>:<number>" -> {"jeton": ..., "auto": bool, "delai": hours}
// (trust.js memoryKey). Nothing is read or written unless the widget is framed by a declared
// Grist server (frameTrust), whose origin is part of the key.
// Never in the document, its options, the history, the logs or a URL. The token is stored
// only once DS accepted it (a sync or a connection test that succeeded), and forgotten when
// DS rejects it (expired, revoked, from a forbidden network) or on « Oublier le jeton ».
// The document's id comes from the access token Grist gives a full-access widget (its
// baseUrl ends with /api/docs/<docId>); else the document's name.
const memoryFallback = new Map();       // when localStorage is not available
const forgetButton = $('forget-token');
const autoInput = $('auto-sync');
const delayInput = $('auto-delay');
let rememberedToken = '';               // the token the field was filled with from memory

async function resolveDocKey() {
  if (!hasGrist) return 'hors-grist';
  const withTimeout = (promise) => Promise.race([promise, new Promise((resolve) => setTimeout(resolve, 3000))]);
  try {
    const access = await withTimeout(grist.docApi.getAccessToken({ readOnly: true }));
    const match = /\/api\/docs\/([^/?#]+)/.exec((access && access.baseUrl) || '');
    if (match) return `doc:${decodeURIComponent(match[1])}`;
  } catch (e) { /* grist-static has no REST API */ }
  try {
    const name = await withTimeout(grist.docApi.getDocName());
    if (name) return `nom:${name}`;
  } catch (e) { /* ignore */ }
  return 'document';
}
// Asked once Grist has answered grist.ready (its first onOptions message): before that,
// Grist does not forward the widget's calls yet.
let docKey = null;
let docKeyAsked = false;
function askDocKey() {
  if (docKeyAsked) return;
  docKeyAsked = true;
  resolveDocKey().then((key) => { docKey = key; recallForProcedure(); });
}
if (!hasGrist) askDocKey();

// Only inside a declared Grist server (frameTrust), keyed by its origin too.
function memoryKey(demarche) {
  if (!frameTrust.trusted || !docKey || !validDemarche(demarche)) return null;
  return memoryKeyFor(frameTrust.parent, docKey, demarche);
}

function readMemory(demarche) {
  const key = memoryKey(demarche);
  if (!key) return {};
  let raw = memoryFallback.get(key) || null;
  try { raw = localStorage.getItem(key); } catch (e) { /* private mode: the in-memory copy */ }
  try { const value = JSON.parse(raw || '{}'); return value && typeof value === 'object' ? value : {}; } catch (e) { return {}; }
}

function writeMemory(demarche, changes) {
  const key = memoryKey(demarche);
  if (!key) return;
  const next = { ...readMemory(demarche), ...changes };
  Object.keys(next).forEach((k) => (next[k] === undefined || next[k] === '') && delete next[k]);
  const empty = !next.jeton && !next.auto;
  if (empty) memoryFallback.delete(key); else memoryFallback.set(key, JSON.stringify(next));
  try {
    if (empty) localStorage.removeItem(key); else localStorage.setItem(key, JSON.stringify(next));
  } catch (e) { /* kept in memory only */ }
}

function showTokenMemory(kept) {
  // Its place stays reserved: the form must not move under the agent's pointer (changing the
  // number and clicking « Synchroniser » at once would otherwise lose the click).
  forgetButton.hidden = false;
  forgetButton.style.visibility = kept ? '' : 'hidden';
  forgetButton.disabled = !kept;
  $('token-hint').textContent = kept ? MSG.tokenKept : MSG.tokenNotKept;
}

// The number changed (typed, options, OTP_Demarches): fill the token and the auto-sync
// settings remembered for this document and procedure.
async function recallFilters(demarche) {
  const saved = (savedOptions.filters || {})[demarche];
  if (saved) { showFilters(saved); return; }
  showFilters({});
  if (!hasGrist || !demarche) return;
  try {   // options may be an unsaved draft on a Grist server: what the last sync recorded
    const tables = await grist.docApi.listTables();
    if (!tables.includes('OTP_Demarches')) return;
    const data = await grist.docApi.fetchTable('OTP_Demarches');
    const row = (data.Numero || []).findIndex((n) => String(n) === demarche);
    if (row >= 0 && data.Filtres && demarcheInput.value.trim() === demarche) showFilters(filtersFromDocument(data.Filtres[row]));
  } catch (err) {
    console.warn('OTP: filtre de la démarche non relu', err);
  }
}

function recallForProcedure() {
  const demarche = demarcheInput.value.trim();
  recallFilters(demarche);
  const memory = readMemory(demarche);
  const typed = tokenInput.value.trim() && tokenInput.value !== rememberedToken;
  if (!typed) {
    // A DS token usually covers all of an administrator's procedures: keep the one in the
    // field when this procedure has none of its own (remembered for it once DS accepts it).
    tokenInput.value = memory.jeton || tokenInput.value;
    rememberedToken = memory.jeton || '';
  }
  showTokenMemory(Boolean(memory.jeton));
  if (Object.keys(memory).length) {      // else keep what the agent ticked (saved with the token)
    autoInput.checked = Boolean(memory.auto);
    if ([1, 6, 24].includes(Number(memory.delai))) delayInput.value = String(memory.delai);
  }
  $('auto-delay-group').hidden = !autoInput.checked;
  maybeAutoSync();
}

function rememberToken(demarche, token) {
  const settings = demarcheInput.value.trim() === demarche && autoInput.checked
    ? { auto: true, delai: Number(delayInput.value) } : {};
  writeMemory(demarche, { jeton: token, ...settings });
  if (demarcheInput.value.trim() === demarche) {
    rememberedToken = token;
    showTokenMemory(true);
  }
}

// Returns true when a remembered token was dropped.
function forgetToken(demarche) {
  const had = Boolean(readMemory(demarche).jeton);
  writeMemory(demarche, { jeton: undefined });
  if (demarcheInput.value.trim() === demarche) {
    if (rememberedToken && tokenInput.value === rememberedToken) tokenInput.value = '';
    rememberedToken = '';
    showTokenMemory(false);
  }
  return had;
}

forgetButton.addEventListener('click', () => {
  forgetToken(demarcheInput.value.trim());
  tokenInput.value = '';
  setStatus(MSG.tokenForgotten, 'info');
  tokenInput.focus();
});

function saveAutoSettings() {
  $('auto-delay-group').hidden = !autoInput.checked;
  writeMemory(demarcheInput.value.trim(), { auto: autoInput.checked || undefined, delai: Number(delayInput.value) });
}
autoInput.addEventListener('change', saveAutoSettings);
delayInput.addEventListener('change', saveAutoSettings);

// « Synchroniser à l'ouverture »: once per opening, when Python is ready, the document's
// procedure and its remembered token are known, and OTP_Demarches.Derniere_synchro of that
// procedure is older than the chosen delay (or absent).
let autoSyncTried = false;
let optionsSeen = !hasGrist;
let prefillDone = Promise.resolve();

async function maybeAutoSync() {
  if (autoSyncTried || !pythonReady || running || !docKey || !optionsSeen || readOnly) return;
  if (!frameTrust.trusted || fatalError) return;
  const demarche = demarcheInput.value.trim();
  const memory = readMemory(demarche);
  if (!memory.auto || !memory.jeton || tokenInput.value !== memory.jeton) return;
  autoSyncTried = true;
  await prefillDone;
  const delayHours = [1, 6, 24].includes(Number(memory.delai)) ? Number(memory.delai) : 24;
  let last = 0;
  try {
    const tables = await grist.docApi.listTables();
    if (tables.includes('OTP_Demarches')) {
      const data = await grist.docApi.fetchTable('OTP_Demarches');
      const row = (data.Numero || []).findIndex((n) => String(n) === demarche);
      if (row >= 0) last = Number((data.Derniere_synchro || [])[row]) || 0;
    }
  } catch (err) {
    console.warn('OTP: lecture de OTP_Demarches impossible', err);
    return;
  }
  const ageSeconds = Date.now() / 1000 - last;
  window.otpWidget.autoSync = { demarche, last, delayHours, ageSeconds, started: false };
  if (last && ageSeconds < delayHours * 3600) return;
  await configReady;
  const { error, params } = validate();
  if (error || hostNeedingConfirmation(params.endpoint)) return;   // never asks on its own
  window.otpWidget.autoSync.started = true;
  startSync(params, MSG.autoSync(last ? `il y a ${formatDuration(ageSeconds)}` : 'jamais faite'));
}

// ---- Grist's theme (light / dark): DSFR follows data-fr-theme on <html> ------------------
let gristTheme = false;
function applyTheme(appearance) {
  document.documentElement.dataset.frTheme = appearance === 'dark' ? 'dark' : 'light';
}
const darkScheme = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
if (darkScheme) {
  applyTheme(darkScheme.matches ? 'dark' : 'light');
  darkScheme.addEventListener('change', (e) => { if (!gristTheme) applyTheme(e.matches ? 'dark' : 'light'); });
}
if (hasGrist && typeof grist.onThemeChange === 'function') {
  grist.onThemeChange((theme) => {
    if (!theme || !theme.appearance) return;
    gristTheme = true;
    applyTheme(theme.appearance);
  });
}
endpointInput.addEventListener('change', () => {
  const demarche = demarcheInput.value.trim();
  const endpoint = currentEndpoint();
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

// The operation under way: what was sent, and what the rate estimate starts from.
let current = null;   // {op, params, base: {done, t} | null, stopping}

function onProgressEvent(event) {
  if (!event || typeof event !== 'object') return;
  if (event.kind === 'phase' && current) timings.phases.push([Math.round(performance.now() - current.t0), event.message]);
  if (current && current.stopping && event.kind !== 'wait') {
    if (event.kind === 'phase' && event.message) setStatus(event.message, 'info');
    return;   // keep saying it is stopping
  }
  if (event.kind === 'progress') {
    progress.hidden = false;
    const done = Number(event.done) || 0;
    const known = event.total !== null && event.total !== undefined;
    if (!known) {
      progress.removeAttribute('value');                    // indeterminate
      progress.removeAttribute('max');
    } else {
      progress.max = Math.max(Number(event.total), 1);
      progress.value = Math.min(done, progress.max);
    }
    if (known) setStatus(`${formatCount(done)} / ${formatCount(event.total)} dossiers`);
    else if (event.message) setStatus(event.message);
    setDetail(rateText(done, known ? Number(event.total) : null));
  } else if (event.kind === 'wait') {
    if (event.message) setStatus(event.message, 'waiting');
  } else if (event.message) {
    setStatus(event.message);
  }
}

// « Lecture des dossiers · 35 dossiers/s · environ 2 min restantes », from the progress
// events of this sync (the first one is the reference point).
function rateText(done, total) {
  if (!current) return '';
  const now = performance.now();
  if (!current.base || done < current.base.done) current.base = { done, t: now };
  const parts = ['Lecture des dossiers'];
  const seconds = (now - current.base.t) / 1000;
  const read = done - current.base.done;
  if (seconds >= 0.5 && read > 0) {
    const perSecond = read / seconds;
    current.rate = perSecond;
    parts.push(MSG.rate(perSecond));
    if (total !== null && total > done) parts.push(MSG.remaining((total - done) / perSecond));
  }
  return parts.join(' · ');
}

function endOperation() {
  running = false;
  runningOp = null;
  showCancel(false);
  updateButton();
}

worker.onmessage = async (ev) => {
  const msg = ev.data || {};
  switch (msg.type) {
    case 'loading':
      updateButton(msg.message);
      if (!running && !fatalError) setStatus(msg.message);
      break;
    case 'ready':
      pythonReady = true;
      timings.ready = performance.now() - timings.start;
      timings.worker = msg.timings;
      updateButton();
      if (fatalError) break;   // e.g. framed by a page that is not a declared Grist server
      setStatus('');
      setState('ready');
      maybeAutoSync();
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
          message: ACCESS_DENIED.test(detail) ? MSG.accessDenied(detail)
            : detail || `Grist a refusé l'opération ${msg.method} (sans autre détail).`,
        };
      }
      worker.postMessage(reply);
      break;
    }
    case 'event':
      onProgressEvent(msg.event);
      break;
    case 'done': {
      const op = current;
      current = null;
      endOperation();
      const result = msg.result || {};
      if (op && op.params && op.params.token) rememberToken(op.params.demarche, op.params.token);
      if (msg.op === 'check') {
        progress.hidden = true;
        setDetail('');
        setStatus(MSG.checkOk(result), 'success');
        setState('checked');
        window.otpWidget.lastCheck = result;
        break;
      }
      if (!progress.hidden && progress.hasAttribute('max')) progress.value = progress.max;
      else progress.hidden = true;
      setDetail(op && op.rate ? `${MSG.rate(op.rate)} en moyenne` : '');
      setStatus(result.message || MSG.done, 'success');
      setState('done');
      window.otpWidget.lastResult = result;
      break;
    }
    case 'error': {
      const op = current;
      current = null;
      if (msg.fatal) fatalError = true;
      endOperation();
      progress.hidden = true;
      setDetail('');
      window.otpWidget.lastError = { code: msg.code || null, op: msg.op };
      if (msg.code === 'cancelled') {            // the agent's choice: neutral, not an error
        setStatus(msg.message, 'info');
        setState('cancelled');
        break;
      }
      let text = msg.message || 'Erreur inattendue.';
      if (op && REJECTED_TOKEN_CODES.includes(msg.code) && forgetToken(op.params.demarche)) {
        text += MSG.tokenDropped;
        tokenInput.value = '';
      }
      setStatus(text, 'error');
      setState('error');
      break;
    }
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
  const endpoint = currentEndpoint();
  if (!validDemarche(demarche)) return { error: MSG.badDemarche, field: demarcheInput };
  if (!token) return { error: MSG.noToken, field: tokenInput };
  if (!validEndpoint(endpoint)) {
    $('advanced').open = true;
    return { error: MSG.badEndpoint, field: endpointInput };
  }
  const refused = transportError(endpoint);
  if (refused) {
    $('advanced').open = true;
    return { error: refused, field: endpointInput };
  }
  const keep_deleted = $('keep-deleted').checked;
  const filters = readFilters();
  const params = { demarche, token, endpoint, keep_deleted, filters, holder: leaseHolder() };
  // Links to dossiers point at DS's site, never at the relay.
  const relay = parseUrl(defaultEndpoint);
  if (dsSite && relay && parseUrl(endpoint).origin === relay.origin && defaultEndpoint !== DEFAULT_ENDPOINT) {
    params.ds_site = dsSite;
  }
  return { params };
}

// ---- confirmation before the token goes to an address from the document -----------------
let pendingConfirmation = null;

function hideConfirmation() {
  $('confirm').hidden = true;
  pendingConfirmation = null;
}

function askConfirmation(host, endpoint, onYes) {
  $('confirm-host').textContent = host;
  $('confirm-url').textContent = endpoint;
  $('confirm').hidden = false;
  pendingConfirmation = { host, endpoint, onYes };
  setStatus('');
  setState('confirm');
  $('confirm-no').focus();
}

$('confirm-yes').addEventListener('click', () => {
  const pending = pendingConfirmation;
  hideConfirmation();
  if (!pending || currentEndpoint() !== pending.endpoint) return;
  if (!mayUseToken()) return;
  rememberConfirmed(pending.endpoint);
  pending.onYes();
});

$('confirm-no').addEventListener('click', () => {
  hideConfirmation();
  setStatus(MSG.cancelled);
  setState('ready');
});

// Who holds a sync's lease (py_core/lease.py): "<browser id>/<tab id>". The browser id stays
// in localStorage, the tab id in sessionStorage (kept when the tab reloads, not shared with
// other tabs): a reloaded tab takes over its own interrupted sync at once; another browser
// waits until that sync ends or its lease expires.
const TAB_ID_KEY = 'otp.onglet';
let browserIdInMemory = '';
let tabIdInMemory = '';

function tabId() {
  try {
    let id = sessionStorage.getItem(TAB_ID_KEY) || '';
    if (!/^[0-9a-f]{8}$/.test(id)) { id = randomId(4); sessionStorage.setItem(TAB_ID_KEY, id); }
    return id;
  } catch (e) {
    return tabIdInMemory || (tabIdInMemory = randomId(4));
  }
}

function randomId(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- filters: per procedure, in the widget options and (for what survives a reload on a
// Grist server, where options may stay an unsaved draft) in OTP_Demarches.Filtres ------------
const FILTER_STATES = ['en_construction', 'en_instruction', 'accepte', 'refuse', 'sans_suite'];

function readFilters() {
  return {
    states: FILTER_STATES.filter((s) => $(`f-${s}`).checked),
    deposited_since: $('f-depot').value || '',
    groupes: $('f-groupes').value.split(',').map((g) => g.trim()).filter(Boolean),
    archived: $('f-archives').value,
    keep_out: $('f-keep').checked,
  };
}

function showFilters(filters) {
  const f = filters || {};
  FILTER_STATES.forEach((s) => { $(`f-${s}`).checked = (f.states || []).includes(s); });
  $('f-depot').value = f.deposited_since || '';
  $('f-groupes').value = (f.groupes || []).join(', ');
  $('f-archives').value = ['all', 'exclude', 'only'].includes(f.archived) ? f.archived : 'all';
  $('f-keep').checked = Boolean(f.keep_out);
  if (filtersActive(f)) $('filters').open = true;
}

function filtersActive(f) {
  return Boolean((f.states || []).length || f.deposited_since || (f.groupes || []).length
    || (f.archived && f.archived !== 'all'));
}

// What the core recorded (OTP_Demarches.Filtres, its own key names) → the form's shape.
function filtersFromDocument(text) {
  try {
    const k = JSON.parse(text || '{}');
    return { states: k.etats || [], deposited_since: k.depot_depuis || '', groupes: k.groupes || [], archived: k.archives || 'all' };
  } catch (e) { return {}; }
}

function leaseHolder() {
  let id = '';
  try {
    id = localStorage.getItem(BROWSER_ID_KEY) || '';
    if (!/^[0-9a-f]{12}$/.test(id)) { id = randomId(6); localStorage.setItem(BROWSER_ID_KEY, id); }
  } catch (e) {
    id = browserIdInMemory || (browserIdInMemory = randomId(6));   // storage unavailable
  }
  return `${id}/${tabId()}`;
}

// Validate the form, then run `op` ('sync' or 'check'), after the confirmation when the
// token would go to an address from the document.
async function submit(op) {
  if (!pythonReady || running || fatalError) return;
  if (readOnly && op === 'sync') {   // before anything: no call to DS, no write attempted
    setStatus(MSG.readOnly, 'error');
    setState('error');
    return;
  }
  await configReady;
  if (!mayUseToken()) return;   // refuseFramer() said why
  hideConfirmation();
  [demarcheInput, tokenInput, endpointInput].forEach((i) => markInvalid(i, false));
  const { error, field, params } = validate();
  if (error) {
    markInvalid(field, true);
    setStatus(error, 'error');
    setDetail('');
    setState('error');
    field.focus();
    return;
  }
  const run = () => (op === 'check' ? startCheck(params) : startSync(params));
  const host = hostNeedingConfirmation(params.endpoint);
  if (host) {
    askConfirmation(host, params.endpoint, run);
    return;
  }
  if (endpointSource === 'agent') rememberConfirmed(params.endpoint);
  run();
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  submit('sync');
});
checkButton.addEventListener('click', () => submit('check'));

const cancelButton = $('cancel');
cancelButton.addEventListener('click', () => {
  if (!running || runningOp !== 'sync' || !current) return;
  cancelButton.disabled = true;
  current.stopping = true;
  setStatus(MSG.stopping, 'info');
  worker.postMessage({ type: 'cancel' });
});

function showCancel(visible) {
  cancelButton.hidden = !visible;
  cancelButton.disabled = false;
}

function startSync(params, message) {
  if (!pythonReady || running || !mayUseToken()) return;
  current = { op: 'sync', params, base: null, stopping: false, t0: performance.now() };
  timings.phases = [];   // [ms since the click, phase] of this sync (the benchmark reads them)
  showCancel(true);
  saveOptions(params);
  window.otpWidget.lastResult = null;
  running = true;
  runningOp = 'sync';
  updateButton();
  progress.hidden = false;
  progress.removeAttribute('value');
  setDetail('');
  setStatus(message || 'Connexion à Démarches Simplifiées…');
  setState('syncing');
  worker.postMessage({ type: 'sync', params });
}

// « Tester la connexion »: the core reads the procedure's structure and writes nothing.
function startCheck(params) {
  if (!pythonReady || running || !mayUseToken()) return;
  current = { op: 'check', params, base: null, stopping: false };
  window.otpWidget.lastCheck = null;
  running = true;
  runningOp = 'check';
  updateButton();
  progress.hidden = true;
  setDetail('');
  setStatus(MSG.checking);
  setState('checking');
  worker.postMessage({ type: 'check', params });
}

// ---- hooks for tests and debugging -------------------------------------------------------------
window.otpWidget = {
  worker,
  timings,
  lastResult: null,
  configReady,
  // Runs plain Python in the worker that writes a table through the whole
  // worker -> main thread -> Grist path, and reads it back.
  selftest() {
    return new Promise((resolve, reject) => {
      selftestWaiters.push({ resolve, reject });
      worker.postMessage({ type: 'selftest' });
    });
  },
  check(params) { if (mayUseToken()) worker.postMessage({ type: 'check', params }); },
  lastCheck: null,
  lastError: null,
  autoSync: null,
  frame: null,   // the frame check (trust.js frameVerdict), once otp-config.json is read
};

setStatus(MSG.loadingPython);
updateButton(MSG.loadingPython);
// The form is in place and listening: the agent can type (Python is still loading).
timings.formReady = performance.now();
