// OTP widget — runs before grist-plugin-api.js (index.html): plugin-API messages are read only
// from the parent window, with the parent's origin. grist-plugin-api.js reads every message sent
// to this window (window.onmessage): any page that frames the widget, or any window holding a
// reference to it, could otherwise speak for Grist. This listener is registered first, so it can
// stop the others; app.js decides later whether that parent is a declared Grist server.
import { acceptMessage, parentOrigin } from './trust.js';

const expectedOrigin = window.parent !== window
  ? parentOrigin({ ancestorOrigins: location.ancestorOrigins, referrer: document.referrer }) : '';

window.addEventListener('message', (event) => {
  if (!acceptMessage({ source: event.source, origin: event.origin, parent: window.parent, expectedOrigin })) {
    event.stopImmediatePropagation();
  }
}, true);

// For app.js: where plugin-API messages are sent (never '*').
window.otpParentOrigin = expectedOrigin;
