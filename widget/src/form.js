// OTP widget — the form's DOM: fields, buttons, the status line, the progress bar, the question
// before the token goes to an address from the document. No decision here (app.js decides).

import { ARCHIVED_CHOICES, DOSSIER_STATES } from './constants.js';
import { MSG } from './messages.js';
import { filtersActive } from './document.js';
import { state } from './state.js';
import { parseUrl } from './trust.js';

export const $ = (id) => document.getElementById(id);
export const form = $('form');
export const demarcheInput = $('demarche');
export const tokenInput = $('token');
export const endpointInput = $('endpoint');
export const syncButton = $('sync');
export const checkButton = $('check');
export const cancelButton = $('cancel');
export const forgetButton = $('forget-token');
export const autoInput = $('auto-sync');
export const delayInput = $('auto-delay');
const progress = $('progress');
const statusLine = $('status');
const detailLine = $('progress-detail');

// body[data-state]: loading, ready, confirm, checking, checked, syncing, done, cancelled, error, untrusted.
export function setState(name) { document.body.dataset.state = name; }

// kind: '' (plain), 'error', 'success', 'info' (neutral: a cancelled sync), 'waiting'.
export function setStatus(text, kind = '') {
  statusLine.textContent = text || '';
  statusLine.className = kind;
}

export function setDetail(text) {
  detailLine.textContent = text || '';
  detailLine.hidden = !text;
}

export function updateButton(loadingMessage) {
  const usable = state.pythonReady && !state.running && !state.fatalError;
  syncButton.disabled = !usable;
  checkButton.disabled = !usable;
  if (state.fatalError) syncButton.textContent = MSG.sync;
  else if (!state.pythonReady) syncButton.textContent = loadingMessage || syncButton.textContent || MSG.loadingPython;
  else if (state.running) syncButton.textContent = state.runningOp === 'check' ? MSG.sync : MSG.syncing;
  else syncButton.textContent = MSG.sync;
}

export function markInvalid(input, invalid) {
  if (invalid) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

export function showCancel(visible) {
  cancelButton.hidden = !visible;
  cancelButton.disabled = false;
}

// The progress bar: hidden, indeterminate (total null), or done / total.
export function showProgress(done, total) {
  if (done === undefined) { progress.hidden = true; return; }
  progress.hidden = false;
  if (total === null) {
    progress.removeAttribute('value');
    progress.removeAttribute('max');
  } else {
    progress.max = Math.max(Number(total), 1);
    progress.value = Math.min(done, progress.max);
  }
}

// A sync starts: the bar shows, indeterminate until the first count.
export function startProgress() {
  progress.hidden = false;
  progress.removeAttribute('value');
}

// A sync ended: a bar with a total fills up, an indeterminate one goes.
export function finishProgress() {
  if (!progress.hidden && progress.hasAttribute('max')) progress.value = progress.max;
  else progress.hidden = true;
}

// Where the token goes, under the field: the API address's host.
export function showDestination(endpoint) {
  const url = parseUrl(endpoint);
  $('token-destination').firstChild.textContent = MSG.destination;
  $('token-host').textContent = url && /^https?:$/.test(url.protocol) ? url.host : MSG.badDestination;
}

export function openAdvanced() { $('advanced').open = true; }

export function showTokenMemory(kept) {
  // Its place stays reserved: the form must not move under the agent's pointer (changing the
  // number and clicking « Synchroniser » at once would otherwise lose the click).
  forgetButton.hidden = false;
  forgetButton.style.visibility = kept ? '' : 'hidden';
  forgetButton.disabled = !kept;
  $('token-hint').textContent = kept ? MSG.tokenKept : MSG.tokenNotKept;
}

export function showAutoDelay() { $('auto-delay-group').hidden = !autoInput.checked; }

// ---- the filter (index.html's check boxes are the states of constants.js) -----------------
export function readFilters() {
  return {
    states: DOSSIER_STATES.filter((s) => $(`f-${s}`).checked),
    deposited_since: $('f-depot').value || '',
    groupes: $('f-groupes').value.split(',').map((g) => g.trim()).filter(Boolean),
    archived: $('f-archives').value,
    keep_out: $('f-keep').checked,
  };
}

export function showFilters(filters) {
  const f = filters || {};
  DOSSIER_STATES.forEach((s) => { $(`f-${s}`).checked = (f.states || []).includes(s); });
  $('f-depot').value = f.deposited_since || '';
  $('f-groupes').value = (f.groupes || []).join(', ');
  $('f-archives').value = ARCHIVED_CHOICES.includes(f.archived) ? f.archived : ARCHIVED_CHOICES[0];
  $('f-keep').checked = Boolean(f.keep_out);
  if (filtersActive(f)) $('filters').open = true;
}

export function keepDeleted() { return $('keep-deleted').checked; }

// ---- the question before the token goes to an address from the document --------------------
export function showConfirmation(host, endpoint) {
  $('confirm-host').textContent = host;
  $('confirm-url').textContent = endpoint;
  $('confirm').hidden = false;
  $('confirm-no').focus();
}

export function hideConfirmationBox() { $('confirm').hidden = true; }

export function onConfirmation(onYes, onNo) {
  $('confirm-yes').addEventListener('click', onYes);
  $('confirm-no').addEventListener('click', onNo);
}
