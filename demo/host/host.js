// OTP local demo / e2e host: boots grist-static with a tiny document, then adds
// the OTP custom widget (full access) to the page. Everything stays in the page.
//
// Query parameters of this page that are passed through to the widget:
//   demarche, endpoint, token
// Other parameters of this page:
//   widget=<url>   widget URL (default: /widget/index.html on this server)
//   nowidget=1     do not add the widget section
//   doc=<url>      open this .grist document (e.g. /template/OTP-modele.grist, the template)
//                  instead of a new one; its custom widget is pointed at the widget URL
//
// window.otpHost (for tests and the console):
//   ready: Promise<{gristMs, widgetMs, widgetUrl, sectionRef}>
//   gristDoc()                 -> the open GristDoc
//   fetchTable(tableId)        -> Promise<{id: [...rowIds], Col: [...], ...}>
//   listTables()               -> [{tableId, tableRef, columns: [{colId, label, type, isFormula, formula}]}]
//   columns(tableId)           -> [{colId, label, type, isFormula, formula}]
//   applyUserActions(actions)  -> Promise<result of the actions>
//   widgetOptions(saved=false) -> what the widget set with grist.setOptions (draft), or
//                                 with saved=true what is stored in the document; or null
//   saveWidgetOptions()        -> store the draft (what the section's Save button does)
//   widgetSectionOptions()     -> the widget section's options (customView parsed)
//   widgetUrl, timings
(function () {
  'use strict';

  const PASS_THROUGH = ['demarche', 'endpoint', 'token'];
  // ASCII only: grist-static's CSV import guesses the encoding and mangles
  // UTF-8 accents; the French text is written afterwards with an action.
  const INITIAL_CSV = 'Message\nOTP\n';
  const WELCOME = 'Document de démonstration de One Trick Pony : le widget importe ici les dossiers d’une démarche.';
  const timings = { start: performance.now() };

  function widgetUrl() {
    const here = new URL(location.href);
    const url = new URL(here.searchParams.get('widget') || '/widget/index.html', here);
    for (const key of PASS_THROUGH) {
      const value = here.searchParams.get(key);
      if (value !== null && value !== '') url.searchParams.set(key, value);
    }
    return url.href;
  }

  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  async function waitFor(fn, what, timeoutMs = 60000) {
    const t0 = performance.now();
    for (;;) {
      let value;
      try { value = fn(); } catch (e) { value = undefined; }
      if (value) return value;
      if (performance.now() - t0 > timeoutMs) throw new Error(`otpHost: timeout waiting for ${what}`);
      await sleep(50);
    }
  }

  function gristDoc() {
    const model = window.gristDocPageModel;
    return model && model.gristDoc && model.gristDoc.get();
  }

  function docData() { return gristDoc().docData; }

  function metaRecords(tableId) {
    const table = docData().getMetaTable(tableId);
    return table.getRecords();
  }

  function listTables() {
    const tables = metaRecords('_grist_Tables');
    const columns = metaRecords('_grist_Tables_column');
    return tables
      .filter((t) => !t.tableId.startsWith('_grist'))
      .map((t) => ({
        tableId: t.tableId,
        tableRef: t.id,
        columns: columns
          .filter((c) => c.parentId === t.id && c.colId !== 'manualSort' && !c.colId.startsWith('gristHelper_'))
          .sort((a, b) => a.parentPos - b.parentPos)
          .map((c) => ({ colId: c.colId, label: c.label, type: c.type, isFormula: c.isFormula, formula: c.formula })),
      }))
      .sort((a, b) => a.tableRef - b.tableRef);
  }

  function columns(tableId) {
    const table = listTables().find((t) => t.tableId === tableId);
    if (!table) throw new Error(`otpHost: no table ${tableId}`);
    return table.columns;
  }

  async function fetchTable(tableId) {
    // Straight from the data engine, like grist.docApi.fetchTable does.
    const response = await gristDoc().docComm.fetchTable(tableId);
    // {tableData: ['TableData', tableId, rowIds, {colId: values}], ...}
    const action = Array.isArray(response) ? response : response.tableData;
    const [, , rowIds, colValues] = action;
    const out = { id: rowIds };
    for (const [colId, values] of Object.entries(colValues)) {
      if (colId === 'manualSort' || colId.startsWith('gristHelper_')) continue;
      out[colId] = values;
    }
    return out;
  }

  let widgetSectionRef = null;

  // Raw options of the widget section (_grist_Views_section.options, parsed),
  // with customView parsed too.
  function widgetSectionOptions() {
    const section = metaRecords('_grist_Views_section').find((s) => s.id === widgetSectionRef);
    if (!section) return null;
    const options = section.options ? JSON.parse(section.options) : {};
    if (typeof options.customView === 'string') options.customView = JSON.parse(options.customView);
    return options;
  }

  function widgetSectionModel() {
    return gristDoc().docModel.viewSections.getRowModel(widgetSectionRef);
  }

  // What the widget set with grist.setOptions, as Grist holds it now. Grist keeps
  // it as an unsaved draft ("modified") until the user clicks Save on the section;
  // saved=true gives the stored value instead.
  function widgetOptions(saved = false) {
    if (!saved) return widgetSectionModel().activeCustomOptions.peek() || null;
    const options = widgetSectionOptions();
    const custom = options && options.customView;
    return (custom && custom.widgetOptions) || null;
  }

  // What the user's click on the section's Save button does.
  async function saveWidgetOptions() {
    await widgetSectionModel().activeCustomOptions.save();
    return widgetOptions(true);
  }

  async function applyUserActions(actions) {
    return docData().sendActions(actions);
  }

  async function addWidget(url) {
    const doc = gristDoc();
    const data = doc.docData;
    const table = metaRecords('_grist_Tables').find((t) => !t.tableId.startsWith('_grist'));
    const view = metaRecords('_grist_Views')[0];
    const sectionRef = await data.sendAction(['CreateViewSection', table.id, view.id, 'custom', null, null]);
    const ref = typeof sectionRef === 'object' && sectionRef !== null ? sectionRef.sectionRef : sectionRef;
    await data.sendAction(['UpdateRecord', '_grist_Views_section', ref, {
      title: 'One Trick Pony',
      options: JSON.stringify({
        customView: JSON.stringify({ mode: 'url', url, access: 'full', widgetDef: null }),
      }),
    }]);
    return ref;
  }

  // A document that carries its custom widget (the template): point it at this server's widget.
  async function adoptWidget(url) {
    const section = metaRecords('_grist_Views_section').find((s) => s.parentKey === 'custom');
    if (!section) return addWidget(url);
    const options = section.options ? JSON.parse(section.options) : {};
    const custom = typeof options.customView === 'string' ? JSON.parse(options.customView) : {};
    options.customView = JSON.stringify({ ...custom, mode: 'url', url, access: 'full' });
    await docData().sendAction(['UpdateRecord', '_grist_Views_section', section.id, { options: JSON.stringify(options) }]);
    return section.id;
  }

  async function bootFile(file) {
    bootstrapGrist({ initialFile: file, name: 'OTP', singlePage: false });
    await waitFor(() => gristDoc() && gristDoc().docData && metaRecords('_grist_Views_section').length, 'Grist document');
    timings.grist = performance.now() - timings.start;
    const url = widgetUrl();
    widgetSectionRef = await adoptWidget(url);
    timings.widgetSection = performance.now() - timings.start;
    return { gristMs: Math.round(timings.grist), widgetUrl: url, sectionRef: widgetSectionRef };
  }

  async function boot() {
    const file = new URL(location.href).searchParams.get('doc');
    if (file) return bootFile(file);
    bootstrapGrist({ initialContent: INITIAL_CSV, name: 'OTP démo', singlePage: false });
    await waitFor(() => gristDoc() && gristDoc().docData && metaRecords('_grist_Tables').length, 'Grist document');
    // The CSV import produces a table named after the content; call it « Accueil ».
    const first = metaRecords('_grist_Tables').find((t) => !t.tableId.startsWith('_grist'));
    if (first && first.tableId !== 'Accueil') {
      await docData().sendAction(['RenameTable', first.tableId, 'Accueil']);
    }
    await docData().sendAction(['UpdateRecord', 'Accueil', 1, { Message: WELCOME }]);
    timings.grist = performance.now() - timings.start;
    const here = new URL(location.href);
    const url = widgetUrl();
    let sectionRef = null;
    if (!here.searchParams.get('nowidget')) {
      sectionRef = await addWidget(url);
      widgetSectionRef = sectionRef;
    }
    timings.widgetSection = performance.now() - timings.start;
    return { gristMs: Math.round(timings.grist), widgetUrl: url, sectionRef };
  }

  window.otpHostBoot = function () {
    const api = {
      gristDoc, fetchTable, listTables, columns, applyUserActions, widgetOptions, saveWidgetOptions, widgetSectionOptions,
      widgetUrl: widgetUrl(), timings,
    };
    api.ready = boot();
    api.ready.catch((err) => console.error('otpHost boot failed', err));
    window.otpHost = api;
  };
})();
