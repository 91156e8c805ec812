// OTP widget — the one state object of the page: everything that changes while it lives.
// Written by app.js (and read by form.js to draw the buttons); no logic here.

import { DEFAULT_ENDPOINT } from './trust.js';

export const state = {
  // Python (worker.js) and the operation under way
  pythonReady: false,
  fatalError: false,         // Python did not load, or the framer is not a declared Grist server
  running: false,            // a sync or a connection test is under way
  runningOp: null,           // 'sync' | 'check'
  current: null,             // {op, params, base: {done, t} | null, rate, stopping, t0}
  selftestWaiters: [],
  sendPreview: null,         // the last « Envoyer vers DS » preview: {…, approved, demarche} (send.js shows it)

  // Where the token goes (README « Sécurité »)
  defaultEndpoint: DEFAULT_ENDPOINT,   // the relay's own endpoint when served by a relay
  relayEndpoint: '',                   // the same, only when served by a relay
  dsSite: '',                          // DS's site (links to dossiers), from the relay's config
  demoMode: false,
  endpointSource: 'default',           // 'default' | 'document' | 'agent'
  pendingConfirmation: null,           // {host, endpoint, onYes} while the question is shown
  // The frame check (trust.js frameVerdict), decided once otp-config.json is read.
  frameTrust: { trusted: false, reason: 'pending', parent: '', foreign: [] },

  // The document
  edited: { demarche: false, endpoint: false },   // typed by the agent or given by the URL
  savedOptions: {},                    // the widget's options in the document
  docKey: null,                        // which document, for this browser's memory
  docKeyAsked: false,
  optionsSeen: false,                  // Grist sent the options (and the prefill ran)
  prefillDone: Promise.resolve(),

  // This browser's memory
  rememberedToken: '',                 // the token the field was filled with from memory
  autoSyncTried: false,

  gristTheme: false,                   // Grist told its theme (then the system's is ignored)
};
