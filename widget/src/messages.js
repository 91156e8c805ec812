// OTP widget — every French sentence the widget and its Python worker show or log, in one place.
// Pure (no DOM): imported by app.js, form.js, document.js and worker.js (a module worker).
// The core's own messages (py_core/errors.py) arrive already written.

import { formatCount, formatDuration, formatRate } from './progress.js';
import { DEFAULT_ENDPOINT } from './trust.js';

// DS's procedure states (demarcheDescriptor.state), as DS shows them.
export const PROCEDURE_STATE_LABELS = {
  brouillon: 'en test (brouillon)', publiee: 'publiée', close: 'close', depubliee: 'dépubliée',
};

// Said by the worker while it cancels, and by the page when « Annuler » is clicked.
const STOPPING = 'Annulation : la synchronisation s’arrête après la page en cours…';
const LOADING_PYTHON = 'Chargement de Python…';

export const MSG = {
  loadingPython: LOADING_PYTHON,
  sync: 'Synchroniser',
  syncing: 'Synchronisation en cours…',
  connecting: 'Connexion à Démarches Simplifiées…',
  badDemarche: 'Le numéro de démarche doit être un nombre entier, par exemple 12345.',
  noToken: "Saisissez le jeton d'API. Un administrateur de la démarche peut en créer un sur Démarches Simplifiées, "
    + "dans son profil, rubrique « Jetons d'API ».",
  badEndpoint: "L'adresse de l'API doit être une adresse web complète, par exemple " + DEFAULT_ENDPOINT + '.',
  notInGrist: "Ce widget doit être ouvert dans Grist, comme vue personnalisée avec l'accès complet au document.",
  // The page that frames the widget is not a Grist server the deployment declared.
  untrusted: {
    foreign: (pages, allowed) => `Ce widget est affiché par ${pages}, qui n'est pas un serveur Grist autorisé `
      + "pour ce widget : par sécurité, il n'utilise ici aucun jeton et ne synchronise rien. Ouvrez-le depuis "
      + `votre Grist (${allowed}) ; si c'est bien votre Grist, demandez à l'équipe qui héberge le widget de `
      + "l'ajouter au réglage OTP_GRIST_ORIGINS du relais.",
    'no-origins': "Ce widget ne sait pas quels serveurs Grist peuvent l'afficher (réglage OTP_GRIST_ORIGINS du "
      + "relais absent) : par sécurité, il n'utilise aucun jeton et ne synchronise rien. Prévenez l'équipe qui "
      + 'héberge le widget.',
    unknown: "Ce navigateur ne dit pas quelle page affiche ce widget : par sécurité, il n'utilise aucun jeton et "
      + 'ne synchronise rien. Ouvrez le widget depuis Grist dans un navigateur à jour (Firefox, Chrome, Edge).',
  },
  httpsOnly: (host) => `Le jeton ne peut être envoyé qu'en https : l'adresse de l'API doit commencer par https:// `
    + `(http:// n'est accepté que vers cet ordinateur : localhost, 127.0.0.1). Le jeton n'a pas été envoyé à ${host}.`,
  cancelled: "Synchronisation annulée : le jeton n'a pas été envoyé.",
  destination: 'Le jeton sera envoyé à : ',
  badDestination: '(adresse de l\'API invalide)',
  done: 'Synchronisation terminée.',
  unexpected: 'Erreur inattendue.',
  accessDenied: (detail) => "vos droits sur ce document ne permettent pas cette modification (document en lecture "
    + `seule pour vous, ou règles d'accès du document ; demandez à un propriétaire) [Grist : ${detail}]`,
  gristRefused: (method) => `Grist a refusé l'opération ${method} (sans autre détail).`,
  unknownGristMethod: (method) => `Méthode Grist inconnue : ${method}`,
  readOnly: "Ce document est en lecture seule pour vous : la synchronisation n'a pas été lancée et rien n'a été "
    + "écrit dans le document. Pour synchroniser, demandez à un propriétaire du document l'accès en modification "
    + '(« Éditeur » ou « Propriétaire »).',
  tokenKept: "Jeton conservé dans ce navigateur uniquement (pour ce document et cette démarche), jamais dans le "
    + 'document.',
  tokenNotKept: 'Après une connexion réussie, le jeton est conservé dans ce navigateur uniquement, jamais dans le '
    + 'document.',
  tokenForgotten: "Jeton oublié : il n'est plus conservé dans ce navigateur.",
  tokenDropped: ' Le jeton conservé dans ce navigateur a été oublié : saisissez un nouveau jeton.',
  checking: 'Test de la connexion à Démarches Simplifiées…',
  checkOk: (r) => `Connexion réussie : démarche n° ${r.number} « ${r.title} »`
    + (r.state ? `, ${PROCEDURE_STATE_LABELS[r.state] || r.state}` : '')
    + (r.dossiers_count !== null && r.dossiers_count !== undefined
      ? `, ${formatCount(r.dossiers_count)} dossier${Number(r.dossiers_count) > 1 ? 's' : ''}` : '')
    + ". Rien n'a été écrit dans le document.",
  stopping: STOPPING,
  autoSync: (ageSeconds) => "Synchronisation automatique à l'ouverture (dernière synchronisation "
    + `${ageSeconds === null ? 'jamais faite' : `il y a ${formatDuration(ageSeconds)}`})…`,
  counted: (done, total) => `${formatCount(done)} / ${formatCount(total)} dossiers`,
  reading: 'Lecture des dossiers',
  rate: (perSecond) => `${formatRate(perSecond)} dossiers/s`,
  averageRate: (perSecond) => `${formatRate(perSecond)} dossiers/s en moyenne`,
  remaining: (seconds) => `environ ${formatDuration(seconds)} restante${Math.round(seconds) > 1 ? 's' : ''}`,
  workerFailed: (detail) => `Impossible de démarrer le moteur Python du widget (${detail || 'erreur du worker'}).`,
};

// « Envoyer vers DS » (send.js, app.js).
export const SEND_MSG = {
  preparing: "Préparation de l'envoi : lecture des modifications de DS…",
  sending: 'Envoi vers DS…',
  pickInstructeur: "Choisissez l'instructeur qui envoie",
  noInstructeur: "Choisissez l'instructeur au nom duquel DS enregistrera l'envoi (liste « Instructeur »), puis "
    + 'cliquez à nouveau sur « Envoyer vers DS ».',
  noPreview: "Cliquez d'abord sur « Envoyer vers DS » : rien n'est envoyé sans que vous ayez vu l'aperçu.",
  dossier: (number) => `Dossier n° ${number}`,
  notSent: (problem) => ` — non envoyé : ${problem}`,
  conflict: (mine, ds) => `Conflit : vous avez « ${mine} », DS a maintenant « ${ds} ».`,
  later: 'Décider plus tard',
  sendMine: 'Envoyer ma valeur',
  keepDs: 'Garder la valeur de DS',
  probeRefused: (detail) => `DS refuse cet instructeur pour au moins un dossier (${detail}) : choisissez un `
    + 'instructeur du groupe des dossiers.',
  readOnlyDoc: "Ce document est en lecture seule pour vous : rien n'a été envoyé vers DS.",
};

// The worker's (worker.js).
export const WORKER_MSG = {
  loadingPython: LOADING_PYTHON,
  loadingModules: 'Chargement des modules…',
  preparing: 'Préparation du connecteur…',
  loadFailed: (detail) => "Impossible de charger le moteur Python du widget. Rechargez la page ; si le problème "
    + `persiste, contactez l'administrateur du widget. (${detail})`,
  busy: 'Une opération est déjà en cours : attendez qu’elle se termine.',
  unexpected: (detail) => `Erreur inattendue : ${detail}`,
  badArguments: (method) => `grist_call(${method}): arguments JSON invalides`,
  gristFailed: (method) => `Échec de l'appel Grist ${method}`,
  stopping: STOPPING,
  unknownMessage: 'OTP worker: message inconnu',
};

// The browser console's (for whoever debugs; never shown in the form).
export const LOG = {
  demarchesUnread: 'OTP: lecture de OTP_Demarches impossible',
  filtersUnread: 'OTP: filtre de la démarche non relu',
  optionsUnsaved: 'OTP: options non enregistrées',
  workerError: 'OTP worker error',
};
