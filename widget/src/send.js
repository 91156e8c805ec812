// OTP widget — « Envoyer vers DS »: the send section's DOM (the instructeur, « Ne pas notifier
// l'usager », the preview by dossier with a choice per conflict, « Confirmer l'envoi »). No
// decision here (app.js decides); every text from the core or the document goes in as text.

import { SEND_MSG } from './messages.js';

const $ = (id) => document.getElementById(id);
export const sendSection = $('send-section');
export const previewButton = $('send-preview');
export const confirmButton = $('send-confirm');
export const instructeurSelect = $('instructeur');
export const noNotification = $('no-notification');
const list = $('send-list');
const warning = $('send-warning');

// The instructeurs' e-mails DS gave (the preview's), `chosen` selected when it is one of them.
export function showInstructeurs(emails, chosen) {
  const keep = chosen || instructeurSelect.value;
  instructeurSelect.replaceChildren(new Option(SEND_MSG.pickInstructeur, ''));
  (emails || []).forEach((email) => instructeurSelect.add(new Option(email, email)));
  instructeurSelect.value = (emails || []).includes(keep) ? keep : '';
}

export function chosenInstructeur() { return instructeurSelect.value; }

// The preview: by dossier, each value as a line; conflicts with « Envoyer ma valeur » /
// « Garder la valeur de DS »; the values DS would refuse and why.
export function showPreview(shown) {
  list.replaceChildren();
  const heading = document.createElement('p');
  heading.className = 'otp-send-summary';
  heading.textContent = shown.message;
  list.append(heading);
  (shown.dossiers || []).forEach((dossier) => list.append(dossierBlock(dossier)));
  warning.hidden = !shown.notify_warning;
  if (shown.warning) {
    const refused = document.createElement('p');
    refused.className = 'error';
    refused.textContent = SEND_MSG.probeRefused(shown.warning);
    list.append(refused);
  }
  const sendable = (shown.counts.send || 0) + (shown.counts.conflicts || 0);
  confirmButton.hidden = sendable === 0;
}

function dossierBlock(dossier) {
  const block = document.createElement('section');
  block.className = 'otp-send-dossier';
  const title = document.createElement('h3');
  title.className = 'fr-text--sm';
  title.textContent = SEND_MSG.dossier(dossier.number);
  const items = document.createElement('ul');
  dossier.items.forEach((item) => items.append(itemLine(item)));
  block.append(title, items);
  return block;
}

function itemLine(item) {
  const line = document.createElement('li');
  line.dataset.outcome = item.outcome;
  line.dataset.ref = item.ref;
  const text = document.createElement('span');
  text.textContent = item.line;
  line.append(text);
  if (item.outcome === 'refused' || item.outcome === 'already') {
    const why = document.createElement('span');
    why.className = 'otp-send-problem';
    why.textContent = SEND_MSG.notSent(item.problem);
    line.append(why);
  } else if (item.outcome === 'conflict') {
    line.append(conflictChoice(item));
  }
  return line;
}

let choiceCount = 0;
function conflictChoice(item) {
  const box = document.createElement('fieldset');
  box.className = 'otp-send-conflict';
  const legend = document.createElement('legend');
  legend.textContent = SEND_MSG.conflict(item.mine, item.ds);
  box.append(legend);
  choiceCount += 1;
  [['', SEND_MSG.later], ['send', SEND_MSG.sendMine], ['keep', SEND_MSG.keepDs]].forEach(([value, label], i) => {
    const id = `conflict-${choiceCount}-${i}`;
    const input = Object.assign(document.createElement('input'), { type: 'radio', name: `conflict-${choiceCount}`, id, value });
    input.dataset.ref = item.ref;
    input.checked = value === '';
    const text = Object.assign(document.createElement('label'), { htmlFor: id, textContent: label });
    box.append(input, text);
  });
  return box;
}

// ref → 'send' | 'keep', for the conflicts the agent decided.
export function conflictChoices() {
  const out = {};
  list.querySelectorAll('input[type=radio]:checked').forEach((input) => {
    if (input.value) out[input.dataset.ref] = input.value;
  });
  return out;
}

export function clearPreview() {
  list.replaceChildren();
  warning.hidden = true;
  confirmButton.hidden = true;
}

export function enableSend(usable) {
  previewButton.disabled = !usable;
  confirmButton.disabled = !usable;
}
