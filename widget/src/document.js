// OTP widget — what the widget reads from the Grist document, and its calls to Grist's docApi.
//
// The core records every synchronised procedure in the table OTP_Demarches (py_core/grist/meta.py):
// Numero, Derniere_synchro (epoch seconds), Adresse_API, Filtres (the filter, Filters.key()).
// No DOM: every function is given the docApi (grist.docApi).

import { ARCHIVED_CHOICES, FILTER_DOCUMENT_KEYS } from './constants.js';
import { MSG } from './messages.js';

export const DEMARCHES_TABLE = 'OTP_Demarches';

// Grist's refusals for lack of rights (a viewer, or the document's access rules).
const ACCESS_DENIED = /No write access|Blocked by [a-z ]*access rules|ACL ?Deny/i;

// OTP_Demarches as columns ({Numero: [...], ...}), or null when the document has none.
export async function readDemarches(docApi) {
  const tables = await docApi.listTables();
  if (!tables.includes(DEMARCHES_TABLE)) return null;
  return docApi.fetchTable(DEMARCHES_TABLE);
}

// The row of this procedure number (text), -1 when absent.
export function rowOf(data, demarche) {
  if (!data || !demarche) return -1;
  return (data.Numero || []).findIndex((n) => n && String(n) === demarche);
}

// The row of the most recently synchronised procedure, -1 when none.
export function latestRow(data) {
  const numbers = (data && data.Numero) || [];
  const times = data.Derniere_synchro || [];
  let best = -1;
  numbers.forEach((n, i) => {
    if (n && (best < 0 || (times[i] || 0) > (times[best] || 0))) best = i;
  });
  return best;
}

export function cell(data, column, row) {
  return row >= 0 && data && data[column] ? data[column][row] : undefined;
}

// When the procedure was last synchronised (epoch seconds), 0 when never.
export function lastSync(data, demarche) {
  return Number(cell(data, 'Derniere_synchro', rowOf(data, demarche))) || 0;
}

// What the core recorded (OTP_Demarches.Filtres, its own key names) -> the form's shape.
export function filtersFromDocument(text) {
  try {
    const recorded = JSON.parse(text || '{}');
    const value = (name, fallback) => recorded[FILTER_DOCUMENT_KEYS[name]] || fallback;
    return {
      states: value('states', []), deposited_since: value('deposited_since', ''),
      groupes: value('groupes', []), archived: value('archived', ARCHIVED_CHOICES[0]),
    };
  } catch (e) { return {}; }
}

// Whether the filter lets only some dossiers in (py_core/plan/filters.py Filters.active).
export function filtersActive(f) {
  return Boolean((f.states || []).length || f.deposited_since || (f.groupes || []).length
    || (f.archived && f.archived !== ARCHIVED_CHOICES[0]));
}

// Which document this is, for this browser's memory: the id from the access token Grist gives a
// full-access widget (its baseUrl ends with /api/docs/<docId>); else the document's name.
export async function resolveDocKey(docApi) {
  const withTimeout = (promise) => Promise.race([promise, new Promise((resolve) => setTimeout(resolve, 3000))]);
  try {
    const access = await withTimeout(docApi.getAccessToken({ readOnly: true }));
    const match = /\/api\/docs\/([^/?#]+)/.exec((access && access.baseUrl) || '');
    if (match) return `doc:${decodeURIComponent(match[1])}`;
  } catch (e) { /* grist-static has no REST API */ }
  try {
    const name = await withTimeout(docApi.getDocName());
    if (name) return `nom:${name}`;
  } catch (e) { /* ignore */ }
  return 'document';
}

// A call asked by the worker: docApi[method](...args) -> {ok, result} | {ok: false, message}
// (a French message; grist-static, at least, rejects with an empty Error: say which call failed).
export async function callDocApi(docApi, method, args) {
  try {
    if (!docApi) throw new Error(MSG.notInGrist);
    const fn = docApi[method];
    if (typeof fn !== 'function') throw new Error(MSG.unknownGristMethod(method));
    const result = await fn.apply(docApi, Array.isArray(args) ? args : []);
    return { ok: true, result: result === undefined ? null : result };
  } catch (err) {
    const detail = (err && err.message) || '';
    return { ok: false, message: ACCESS_DENIED.test(detail) ? MSG.accessDenied(detail) : detail || MSG.gristRefused(method) };
  }
}
