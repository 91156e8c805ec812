// OTP widget — who may use the agent's token: pure functions, no DOM, no storage.
//
// Two questions are decided here (and tested in tests/test_trust.py, with Node):
//   1. Which page frames the widget: the widget recalls a token, syncs on its own or accepts a
//      click only inside a Grist server the deployment declared (otp-config.json "gristOrigins",
//      the relay's OTP_GRIST_ORIGINS), every ancestor frame included.
//   2. Where the token may go without asking: the relay's own endpoint (exact URL) and DS's sites.
//
// app.js and guard.js import this module; build.py ships it as widget/dist/trust.js.

// "https://grist.example.gouv.fr", "http://127.0.0.1:8484"...: scheme://host[:port], nothing else.
export function normalizeOrigin(value) {
  if (typeof value !== 'string' || !value.trim()) return null;
  let url;
  try { url = new URL(value.trim()); } catch (e) { return null; }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (url.username || url.password) return null;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) return null;
  // new URL('https://a.b/').origin has no trailing slash; reject "https://a.b/x" above.
  return url.origin;
}

// The declared Grist origins: a space-separated string (OTP_GRIST_ORIGINS as the relay serves it)
// or an array. Anything that is not a plain origin ('self', '*', a path, a typo) is dropped.
export function parseOrigins(value) {
  const items = Array.isArray(value) ? value : (typeof value === 'string' ? value.split(/\s+/) : []);
  const origins = [];
  for (const item of items) {
    const origin = normalizeOrigin(item);
    if (origin && !origins.includes(origin)) origins.push(origin);
  }
  return origins;
}

// The origins of the frames above the widget, the parent first. Chromium and Safari give all of
// them (location.ancestorOrigins); elsewhere (Firefox) only the parent is known, from
// document.referrer (its origin), and the relay's Content-Security-Policy frame-ancestors checks
// the others. null when nothing tells (no ancestorOrigins and an empty referrer).
export function ancestorChain({ ancestorOrigins, referrer }) {
  if (ancestorOrigins && typeof ancestorOrigins.length === 'number') {
    return Array.from(ancestorOrigins, (o) => String(o));
  }
  const parent = normalizeOrigin(originOf(referrer));
  return parent ? [parent] : null;
}

function originOf(href) {
  try { return new URL(href).origin; } catch (e) { return ''; }
}

// The parent frame's origin ('' when unknown): plugin-API messages must come from it.
export function parentOrigin(input) {
  const chain = ancestorChain(input);
  return chain && chain.length ? chain[0] : '';
}

// Whether the page that frames the widget is a declared Grist server.
//   framed: window.parent !== window
//   allowed: parseOrigins(...) of the deployment's configuration
// -> {trusted, reason, parent, foreign}; reason: 'ok', 'not-framed', 'no-origins', 'unknown'
//    (no ancestor information at all), 'foreign' (an ancestor is not declared: foreign lists them).
export function frameVerdict({ framed, ancestorOrigins, referrer, allowed }) {
  if (!framed) return { trusted: false, reason: 'not-framed', parent: '', foreign: [] };
  const declared = parseOrigins(allowed);
  const chain = ancestorChain({ ancestorOrigins, referrer });
  const parent = chain && chain.length ? chain[0] : '';
  if (!declared.length) return { trusted: false, reason: 'no-origins', parent, foreign: [] };
  if (!chain || !chain.length) return { trusted: false, reason: 'unknown', parent, foreign: [] };
  const foreign = chain.filter((origin) => !declared.includes(origin));
  if (foreign.length) return { trusted: false, reason: 'foreign', parent, foreign };
  return { trusted: true, reason: 'ok', parent, foreign: [] };
}

// A plugin-API message is read only when it comes from the parent window, with the parent's
// origin as the browser reports it (event.source, event.origin).
export function acceptMessage({ source, origin, parent, expectedOrigin }) {
  return Boolean(parent) && source === parent && Boolean(expectedOrigin) && origin === expectedOrigin;
}

// Where the token may go without the agent confirming it: the relay's own endpoint (exact URL:
// not another path of its origin), DS's own sites over https, and the DS instance the relay
// serves (dsSite). Returns 'relay', 'ds' or null (ask first, unless the agent typed it).
export function trustedDestination(endpoint, { relayEndpoint = '', dsHosts = [], dsSite = '' } = {}) {
  let url;
  try { url = new URL(endpoint); } catch (e) { return null; }
  if (url.username || url.password) return null;
  if (relayEndpoint && url.href === relayEndpoint) return 'relay';
  if (url.protocol === 'https:' && dsHosts.includes(url.host)) return 'ds';
  const site = normalizeOrigin(dsSite);
  if (site && url.origin === site) return 'ds';
  return null;
}

// What a confirmation is remembered for: the exact address (origin and path), never only its host.
export function confirmationKey(endpoint) {
  try {
    const url = new URL(endpoint);
    return url.origin + url.pathname;
  } catch (e) { return ''; }
}

// localStorage key of this browser's memory for one procedure of one document of one Grist
// server: "otp.demarche:<grist origin> <document>:<number>". The Grist origin is the trusted
// parent's, so a document id given by another server never recalls this one's token.
export function memoryKey(gristOrigin, docKey, demarche) {
  if (!gristOrigin || !docKey || !/^[0-9]{1,15}$/.test(String(demarche))) return null;
  return `otp.demarche:${gristOrigin} ${docKey}:${demarche}`;
}
