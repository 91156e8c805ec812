// OTP widget — « Dites-le-nous une fois »: prefilling DS dossiers from the rows of
// D<n>_Preremplissage, and following them. The section and its three buttons; app.js runs the
// operations (the same form: procedure, token, API address) and shows their progress and end.
//
//   prefill_prepare   « Préparer le préremplissage »      the table, made or adjusted to the form
//   prefill_create    « Créer les dossiers préremplis »   one dossier per ready row (Annuler: yes)
//   prefill_follow    « Mettre à jour le suivi »          the states of the prefilled dossiers

export const PREFILL_OPS = ['prefill_prepare', 'prefill_create', 'prefill_follow'];

const TEXT = {
  title: 'Préremplir des dossiers (« Dites-le-nous une fois »)',
  intro: 'Créez des dossiers DS déjà remplis à partir d’une table de ce document : chaque personne reçoit '
    + 'le lien de son dossier, le vérifie, le complète et le dépose.',
  steps: '1. « Préparer le préremplissage » crée la table D<n>_Preremplissage (une colonne par champ). '
    + '2. Remplissez une ligne par dossier (à la main, par import ou par formules). '
    + '3. « Créer les dossiers préremplis » : les valeurs sont vérifiées selon les règles de DS, les problèmes '
    + 'écrits dans « Problèmes ». 4. Envoyez à chaque personne son lien, et à elle seule.',
  privacy: 'Le lien d’un dossier prérempli permet à quiconque le détient de s’en emparer : ne le partagez qu’avec '
    + 'sa personne ; les règles d’accès de Grist peuvent masquer la colonne aux autres lecteurs.',
  prefill_prepare: 'Préparer le préremplissage',
  prefill_create: 'Créer les dossiers préremplis',
  prefill_follow: 'Mettre à jour le suivi',
};

function button(op, secondary) {
  const b = document.createElement('button');
  b.type = 'button';
  b.id = op.replace('_', '-');
  b.className = secondary ? 'fr-btn fr-btn--secondary fr-btn--sm' : 'fr-btn fr-btn--sm';
  b.textContent = TEXT[op];
  return b;
}

function paragraph(text, className) {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}

// The section, after the form; `run(op)` validates the form and starts the operation.
export function installPrefill(run) {
  const section = document.createElement('details');
  section.id = 'prefill';
  section.className = 'otp-advanced';
  const summary = document.createElement('summary');
  summary.textContent = TEXT.title;
  const buttons = document.createElement('div');
  buttons.className = 'fr-btns-group fr-btns-group--inline-sm';
  PREFILL_OPS.forEach((op, i) => {
    const b = button(op, i !== 1);
    b.addEventListener('click', () => run(op));
    buttons.append(b);
  });
  section.append(summary, paragraph(TEXT.intro, 'fr-text--sm'), paragraph(TEXT.steps, 'fr-text--sm'),
    paragraph(TEXT.privacy, 'fr-text--sm otp-privacy'), buttons);
  document.getElementById('form').after(section);
  return section;
}
