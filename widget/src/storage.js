// OTP widget — this browser's storage: one helper for every key the widget keeps.
//
// Web storage may be missing or refuse (private mode, storage blocked for framed pages, a full
// quota): every value is also kept in memory, for as long as the page lives, and read from there
// when the storage does not answer. Pure apart from the storage it is given
// (tests/test_widget_modules.py runs it with Node, with and without a storage).
//
// Keys (all under "otp."):
//   localStorage   "otp.demarche:<Grist origin> <document>:<number>"  this browser's memory for one
//                  procedure: {"jeton", "auto", "delai"} (memory.js)
//                  "otp.jeton.adresse-confirmee:<origin+path>"  addresses the agent agreed to send
//                  the token to (trust.js confirmationKey)
//                  "otp.navigateur"   this browser's id (the sync lease's holder, py_core/lease.py)
//   sessionStorage "otp.onglet"       this tab's id (kept when the tab reloads)

export const CONFIRMED_KEY = 'otp.jeton.adresse-confirmee:';
export const BROWSER_ID_KEY = 'otp.navigateur';
export const TAB_ID_KEY = 'otp.onglet';

// getStorage: () => localStorage (a function: merely reading window.localStorage may throw).
export function createStore(getStorage) {
  const memory = new Map();
  const attempt = (action) => { try { return action(getStorage()); } catch (e) { return undefined; } };
  return {
    get(key) {
      const value = attempt((s) => s.getItem(key));
      if (typeof value === 'string') return value;
      return memory.has(key) ? memory.get(key) : null;
    },
    set(key, value) {
      memory.set(key, value);
      attempt((s) => s.setItem(key, value));
    },
    remove(key) {
      memory.delete(key);
      attempt((s) => s.removeItem(key));
    },
    // A JSON object ({} when absent or not an object).
    getObject(key) {
      try {
        const value = JSON.parse(this.get(key) || '{}');
        return value && typeof value === 'object' ? value : {};
      } catch (e) { return {}; }
    },
  };
}

export function randomId(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// An id of `bytes` random bytes in hex, made once and kept under `key`.
export function keptId(store, key, bytes) {
  let id = store.get(key) || '';
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(id)) {
    id = randomId(bytes);
    store.set(key, id);
  }
  return id;
}

export const local = createStore(() => window.localStorage);
export const session = createStore(() => window.sessionStorage);
