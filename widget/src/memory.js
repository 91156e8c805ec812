// OTP widget — what this browser remembers (storage.js keeps it), and under which key:
//   - per Grist server, document and procedure: the token and « Synchroniser à l'ouverture »,
//     "otp.demarche:<Grist origin> <document>:<number>" -> {"jeton", "auto", "delai"} (trust.js
//     memoryKey). Only inside a declared Grist server (state.frameTrust), whose origin is in the key;
//   - the API addresses the agent agreed to send the token to (trust.js confirmationKey);
//   - who holds a sync's lease (py_core/jobs/lease.py): "<browser id>/<tab id>". The browser id
//     stays in localStorage, the tab id in sessionStorage (kept when the tab reloads, not shared
//     with other tabs): a reloaded tab takes over its own interrupted sync at once; another
//     browser waits until that sync ends or its lease expires.
// Never in the document, its options, the history, the logs or a URL.

import { state } from './state.js';
import { BROWSER_ID_KEY, CONFIRMED_KEY, TAB_ID_KEY, keptId, local, session } from './storage.js';
import { confirmationKey, memoryKey as memoryKeyFor, validDemarche } from './trust.js';

// The delays « Synchroniser à l'ouverture » offers, in hours (index.html's select).
export const AUTO_DELAYS = [1, 6, 24];
export const DEFAULT_DELAY = 24;

function memoryKey(demarche) {
  if (!state.frameTrust.trusted || !state.docKey || !validDemarche(demarche)) return null;
  return memoryKeyFor(state.frameTrust.parent, state.docKey, demarche);
}

// {jeton?, auto?, delai?} remembered for this procedure ({} when none, or not in a declared Grist).
export function readMemory(demarche) {
  const key = memoryKey(demarche);
  return key ? local.getObject(key) : {};
}

// Merge `changes` (undefined or '' removes an entry); nothing left worth keeping removes the item.
export function writeMemory(demarche, changes) {
  const key = memoryKey(demarche);
  if (!key) return;
  const next = { ...readMemory(demarche), ...changes };
  Object.keys(next).forEach((k) => (next[k] === undefined || next[k] === '') && delete next[k]);
  if (!next.jeton && !next.auto) local.remove(key);
  else local.set(key, JSON.stringify(next));
}

// The remembered delay in hours when it is one the form offers, else null.
export function rememberedDelay(memory) {
  return AUTO_DELAYS.includes(Number(memory.delai)) ? Number(memory.delai) : null;
}

export function isConfirmed(endpoint) {
  const key = confirmationKey(endpoint);
  return Boolean(key) && local.get(CONFIRMED_KEY + key) !== null;
}

export function rememberConfirmed(endpoint) {
  const key = confirmationKey(endpoint);
  if (key) local.set(CONFIRMED_KEY + key, new Date().toISOString());
}

export function leaseHolder() { return `${keptId(local, BROWSER_ID_KEY, 6)}/${keptId(session, TAB_ID_KEY, 4)}`; }
